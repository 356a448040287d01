"""The names the tests share: the repository, the moto account's tables and bus, the callers and
their project, the stand-in agent."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"

ACCOUNT = "123456789012"
REGION = "us-east-1"
TABLE_NAMES = {"MessagesTable": "test-messages", "ProjectsTable": "test-projects"}
BUS_NAME = "test-cancel-bus"
CANCEL_PATH = "/api/messages/cancel"

OWNER = "user_2owner"
OTHER_USER = "user_2stranger"
ORG = "org_2team"
PROJECT = "k57abc123def456"

STAND_IN_AGENT = ROOT / "devstack" / "agent" / "stand_in_agent.asl.json"
# Named as the local stack names it (devstack.demo.stand_in_agents), so the sample events fit both.
AGENT_NAME = "cancel-service-local-stand_in_agent"
AGENT_ROLE = f"arn:aws:iam::{ACCOUNT}:role/stand-in-agent"
AGENT_STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{AGENT_NAME}"
