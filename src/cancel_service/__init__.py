"""Stop the AI: cancel the processing messages of a project and stop their agents."""
