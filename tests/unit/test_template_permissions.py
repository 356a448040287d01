"""Least privilege in the translated template: each function may make exactly the calls it needs,
on exactly its table, indexes, bus, queue and agent; none may scan or use wildcards."""

from __future__ import annotations

import pytest

from support.cfn import AGENT_ARN, FUNCTIONS, PARAMETERS, actions, by_sid, statements, translate


def index_arn(table: str, index: str) -> dict[str, str]:
    return {"Fn::Sub": f"${{{table}.Arn}}/index/{index}"}


def test_cancel_function_reads_one_project_and_the_processing_index_and_publishes_as_app_messages(cfn):
    assert actions(cfn, "CancelFunction") == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "events:PutEvents",
    }
    sids = by_sid(cfn, "CancelFunction")
    assert sids["ReadProject"]["Resource"] == {"Fn::GetAtt": ["ProjectsTable", "Arn"]}
    assert sids["ReadProcessingMessages"]["Resource"] == index_arn("MessagesTable", "byProjectAndStatus")
    assert sids["CancelMessages"]["Resource"] == {"Fn::GetAtt": ["MessagesTable", "Arn"]}
    assert sids["PublishCancelEvents"]["Resource"] == {"Fn::GetAtt": ["CancelBus", "Arn"]}
    assert sids["PublishCancelEvents"]["Condition"] == {"StringEquals": {"events:source": "app.messages"}}


def test_the_api_routes_the_cancel_call_and_lets_only_the_apps_origins_use_credentials(template):
    parties = "https://app.example.com,https://www.example.com"
    api = translate(template, {**PARAMETERS, "ClerkAuthorizedParties": parties})["Resources"]["HttpApi"]
    body = api["Properties"]["Body"]
    condition, cors, without = body["x-amazon-apigateway-cors"]["Fn::If"]
    assert condition == "HasAuthorizedParties"
    assert cors["allowOrigins"] == {"Fn::Split": [",", parties]}
    assert cors["allowCredentials"] is True
    assert set(cors["allowHeaders"]) == {"authorization", "content-type"}
    assert cors["allowMethods"] == ["POST"]
    assert without == {"Ref": "AWS::NoValue"}  # no origins configured: no CORS, never "*" with credentials
    route = body["paths"]["/api/messages/cancel"]
    assert list(route) == ["post"]
    assert route["post"]["x-amazon-apigateway-integration"]["payloadFormatVersion"] == "2.0"
    assert list(body["paths"]) == ["/api/messages/cancel"]


@pytest.mark.parametrize("lane", ["UserStop", "BulkStop"])
def test_stop_functions_may_only_stop_executions_of_the_agent_and_read_their_own_queue(cfn, lane):
    function = f"{lane}AgentFunction"
    pace = {"dynamodb:UpdateItem"} if lane == "BulkStop" else set()
    assert actions(cfn, function) == {
        "states:StopExecution",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        *pace,
    }
    consume = by_sid(cfn, function)["ConsumeStopRequests"]
    assert consume["Resource"] == {"Fn::GetAtt": [f"{lane}RequestsQueue", "Arn"]}
    if pace:
        assert by_sid(cfn, function)["ReserveStopPace"]["Resource"] == {
            "Fn::GetAtt": ["StopPaceTable", "Arn"]
        }
    resource_arn = by_sid(cfn, function)["StopAgentExecutions"]["Resource"]
    template, variables = resource_arn["Fn::Sub"]
    assert template == "arn:${Partition}:states:${Region}:${Account}:execution:${StateMachineName}:*"
    arn_parts = AGENT_ARN.split(":")
    resolved = {name: arn_parts[value["Fn::Select"][0]] for name, value in variables.items()}
    assert resolved == {
        "Partition": "aws",
        "Region": "eu-west-1",
        "Account": "210987654321",
        "StateMachineName": "agent",
    }


def test_bulk_function_queries_only_its_indexes_and_publishes_only_its_sources(cfn):
    assert actions(cfn, "BulkCancelFunction") == {
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "events:PutEvents",
        "sqs:SendMessage",
    }
    sids = by_sid(cfn, "BulkCancelFunction")
    assert sids["ReadOwnersProjects"]["Resource"] == index_arn("ProjectsTable", "byOwner")
    assert sids["KeepBulkState"]["Resource"] == {"Fn::GetAtt": ["BulkStateTable", "Arn"]}
    assert sids["KeepBulkState"]["Action"] == ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    assert sids["ReadPageInFlight"]["Resource"] == {"Fn::GetAtt": ["MessagesTable", "Arn"]}
    assert sids["ReadProcessingMessages"]["Resource"] == [
        index_arn("MessagesTable", "byProjectAndStatus"),
        index_arn("AgeIndexTable", "byShardAndPosition"),
    ]
    assert sids["CancelMessages"]["Resource"] == {"Fn::GetAtt": ["MessagesTable", "Arn"]}
    # The age index's entries are checked against the messages, and repaired in the index only.
    assert sids["ReadPageInFlight"]["Action"] == "dynamodb:BatchGetItem"
    assert sids["RepairAgeIndexEntries"]["Resource"] == {"Fn::GetAtt": ["AgeIndexTable", "Arn"]}
    publish = sids["PublishCancelContinuationAndReportEvents"]
    assert publish["Resource"] == {"Fn::GetAtt": ["CancelBus", "Arn"]}
    assert publish["Condition"] == {"StringEquals": {"events:source": ["app.messages", "app.messages.bulk"]}}


def test_execution_status_function_reads_the_execution_index_only(cfn):
    assert actions(cfn, "ExecutionStatusFunction") == {
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "events:PutEvents",
        "sqs:SendMessage",
    }
    sids = by_sid(cfn, "ExecutionStatusFunction")
    assert sids["FindMessageOfExecution"]["Resource"] == index_arn("MessagesTable", "byExecutionArn")
    assert sids["PublishCancelEvents"]["Condition"] == {"StringEquals": {"events:source": "app.messages"}}


def test_age_index_function_reads_the_messages_stream_and_writes_the_age_index_only(cfn):
    assert actions(cfn, "AgeIndexFunction") == {
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    }
    sids = by_sid(cfn, "AgeIndexFunction")
    assert sids["KeepAgeIndex"]["Resource"] == {"Fn::GetAtt": ["AgeIndexTable", "Arn"]}
    assert sids["ReadMessagesStream"]["Resource"] == {"Fn::GetAtt": ["MessagesTable", "StreamArn"]}


def test_no_function_may_scan_or_use_wildcards(cfn):
    for function in FUNCTIONS:
        for statement in statements(cfn, function):
            action = statement["Action"]
            assert "dynamodb:Scan" not in ([action] if isinstance(action, str) else action)
            assert statement["Resource"] != "*"
    for function in ("BulkCancelFunction", "ExecutionStatusFunction"):
        [send] = [s for s in statements(cfn, function) if s["Action"] == "sqs:SendMessage"]
        assert send["Resource"] == {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}


def test_indexes_the_functions_read(template):
    def indexes(table: str) -> dict[str, list[str]]:
        return {
            index["IndexName"]: [key["AttributeName"] for key in index["KeySchema"]]
            for index in template["Resources"][table]["Properties"]["GlobalSecondaryIndexes"]
        }

    # No index keyed by status alone: see tests/unit/test_age_index_template.py.
    assert indexes("MessagesTable") == {
        "byProjectAndStatus": ["projectId", "status"],
        "byExecutionArn": ["executionArn"],
    }
    assert indexes("AgeIndexTable") == {"byShardAndPosition": ["shard", "position"]}
    assert indexes("ProjectsTable") == {"byOwner": ["ownerId"]}


def test_the_agents_watch_policy_grants_getitem_on_the_messages_table_alone_and_is_an_output(cfn):
    policy = cfn["Resources"]["AgentCancelWatchPolicy"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    assert set(policy["Properties"]) == {"Description", "PolicyDocument"}  # attached by the agent, not here
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {
            "Sid": "WatchMessageStatus",
            "Effect": "Allow",
            "Action": "dynamodb:GetItem",
            "Resource": {"Fn::GetAtt": ["MessagesTable", "Arn"]},
        }
    ]
    assert cfn["Outputs"]["AgentCancelWatchPolicyArn"]["Value"] == {"Ref": "AgentCancelWatchPolicy"}
