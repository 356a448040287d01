"""Events as the functions receive them: the sample events in events/, EventBridge envelopes, and
the template's own rule patterns with EventBridge's matching."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from moto.events.models import EventPattern
from moto.events.utils import EventMessageType

from support.constants import ACCOUNT, AGENT_STATE_MACHINE_ARN, EVENTS, REGION


def load_event(name: str) -> dict[str, Any]:
    """A sample event of events/."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def rule_pattern(template: dict[str, Any], function: str, event: str) -> dict[str, Any]:
    """The EventPattern of one of the template's EventBridgeRule events, parameters filled in."""
    pattern = template["Resources"][function]["Properties"]["Events"][event]["Properties"]["Pattern"]
    text = json.dumps(pattern).replace(
        json.dumps({"Ref": "AgentStateMachineArn"}), json.dumps(AGENT_STATE_MACHINE_ARN)
    )
    filled: dict[str, Any] = json.loads(text)
    return filled


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge's own matching (moto's implementation of it)."""
    return bool(EventPattern.load(json.dumps(pattern)).matches_event(cast("EventMessageType", event)))


def eventbridge_event(detail_type: str, detail: dict[str, Any], *, source: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [],
        "detail": detail,
    }
