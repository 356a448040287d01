"""The template as CloudFormation receives it: the SAM transform run offline (no AWS calls), and
what to read from its output (a resource's properties, a function's IAM statements and actions)."""

from __future__ import annotations

import copy
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

AGENT_ARN = "arn:aws:states:eu-west-1:210987654321:stateMachine:agent"
PARAMETERS = {"ClerkIssuer": "https://clerk.example.com", "AgentStateMachineArn": AGENT_ARN}

# Every function of the template and its handler.
FUNCTIONS = {
    "CancelFunction": "cancel_service.handlers.cancel_http.handler",
    "UserStopAgentFunction": "cancel_service.handlers.stop_agent.user_lane_handler",
    "BulkStopAgentFunction": "cancel_service.handlers.stop_agent.bulk_lane_handler",
    "BulkCancelFunction": "cancel_service.handlers.bulk_cancel.handler",
    "ExecutionStatusFunction": "cancel_service.handlers.execution_status.handler",
    "AgeIndexFunction": "cancel_service.handlers.age_index_stream.handler",
}


def translate(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    sam = copy.deepcopy(template)
    sam["Globals"]["Function"]["CodeUri"] = "s3://artifacts/cancel-service.zip"  # as `sam package` leaves it
    # The region only names ARNs of AWS managed policies; no call is made with this session.
    session = boto3.session.Session(region_name="us-east-1")
    translated: dict[str, Any] = Translator({}, Parser(), boto_session=session).translate(sam, parameters)
    return translated


def resource(cfn: dict[str, Any], logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = cfn["Resources"][logical_id]["Properties"]
    return properties


def statements(cfn: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = resource(cfn, f"{function}Role")
    return [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]


def by_sid(cfn: dict[str, Any], function: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in statements(cfn, function) if "Sid" in s}


def actions(cfn: dict[str, Any], function: str) -> set[str]:
    found: set[str] = set()
    for statement in statements(cfn, function):
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found
