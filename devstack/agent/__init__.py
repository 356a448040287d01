"""The stand-in agent: its state machine (stand_in_agent.asl.json), its one step (answer) and the
worker that runs that step for each execution (task_worker)."""
