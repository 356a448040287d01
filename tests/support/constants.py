"""The names the tests share: the moto account's tables and bus, the callers and their project.
The facts the tests share with the local stack (account, region, the API's path, the stand-in
agent) are the stack's own, taken from devstack."""

from __future__ import annotations

from devstack.constants import ACCOUNT, CANCEL_PATH, REGION, ROOT, STACK_NAME
from devstack.demo import AGENT_ROLE, stand_in_agent_arn, stand_in_agents

__all__ = ["ACCOUNT", "AGENT_ROLE", "CANCEL_PATH", "REGION", "ROOT"]

EVENTS = ROOT / "events"

TABLE_NAMES = {
    "MessagesTable": "test-messages",
    "ProjectsTable": "test-projects",
    "StopPaceTable": "test-stop-pace",
    "BulkStateTable": "test-bulk-state",
    "AgeIndexTable": "test-age-index",
}
# Several shards, so that every reading of the age index merges them.
AGE_INDEX_SHARDS = 4
BUS_NAME = "test-cancel-bus"

OWNER = "user_2owner"
OTHER_USER = "user_2stranger"
ORG = "org_2team"
PROJECT = "k57abc123def456"

# The local stack's first stand-in agent, the one the sample events name.
AGENT_NAME, STAND_IN_AGENT = stand_in_agents(STACK_NAME)[0]
AGENT_STATE_MACHINE_ARN = stand_in_agent_arn(STACK_NAME)
