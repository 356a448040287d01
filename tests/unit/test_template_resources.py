"""The template as CloudFormation receives it: the functions, parameters, rules, targets, queues,
dead-letter queues, alarms and outputs the SAM transform yields."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.template import Template, resources_of_type
from support.cfn import FUNCTIONS, resource


def test_every_function_with_its_handler_runtime_tracing_and_a_log_group(cfn):
    functions = resources_of_type(cfn, "AWS::Lambda::Function")
    assert {name: f["Properties"]["Handler"] for name, f in functions.items()} == FUNCTIONS
    log_groups = resources_of_type(cfn, "AWS::Logs::LogGroup")
    for name, function in functions.items():
        properties = function["Properties"]
        assert properties["Runtime"] == "python3.13"
        assert properties["TracingConfig"] == {"Mode": {"Ref": "Tracing"}}
        assert properties["Architectures"] == [{"Ref": "Architecture"}]
        assert properties["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "cancel-service"
        assert log_groups[f"{name}LogGroup"]["Properties"] == {
            "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{{name}}}"},
            "RetentionInDays": {"Ref": "LogRetentionDays"},
        }


def test_parameters(template):
    parameters = template["Parameters"]
    for name in (
        "ClerkIssuer",
        "ClerkJwksUrl",
        "ClerkAuthorizedParties",
        "ClerkJwtKey",
        "ClerkPublishableKey",
    ):
        assert name in parameters
    assert parameters["StaleAfterSeconds"]["Default"] == 3600
    assert parameters["LogLevel"]["Default"] == "INFO"
    assert "AgentStateMachineArn" in parameters
    assert parameters["Architecture"]["AllowedValues"] == ["arm64", "x86_64"]


@pytest.mark.parametrize(("tracing", "trace_disabled"), [({}, None), ({"Tracing": "PassThrough"}, "true")])
def test_tracing_is_active_by_default_and_passthrough_loads_no_xray_sdk(tracing, trace_disabled):
    """Active by default; PassThrough also tells Powertools' Tracer not to load the X-Ray SDK."""
    template = Template({"ClerkIssuer": "https://clerk.example.com", **tracing}, require_all=False)
    assert template.parameters["Tracing"] == tracing.get("Tracing", "Active")
    for function in template.functions().values():
        assert function.environment.get("POWERTOOLS_TRACE_DISABLED") == trace_disabled


def rule_of(cfn: dict[str, Any], logical_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    rule = resource(cfn, logical_id)
    [target] = rule["Targets"]
    return rule, target


@pytest.mark.parametrize(
    ("rule_id", "target_id"),
    [
        ("UserStopRequestsRule", "UserStopRequestsQueue"),
        ("BulkStopRequestsRule", "BulkStopRequestsQueue"),
        ("BulkCancelFunctionBulkCancelRequested", "BulkCancelFunction"),
        ("BulkCancelFunctionStaleSweep", "BulkCancelFunction"),
        ("ExecutionStatusFunctionAgentExecutionEnded", "ExecutionStatusFunction"),
    ],
)
def test_every_rule_target_retries_then_dead_letters(cfn, rule_id, target_id):
    _, target = rule_of(cfn, rule_id)

    assert target["Arn"] == {"Fn::GetAtt": [target_id, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["UndeliveredEventsQueue", "Arn"]}}
    queue_policy = resource(cfn, "UndeliveredEventsQueuePolicy")["PolicyDocument"]["Statement"][0]
    assert {"Fn::GetAtt": [rule_id, "Arn"]} in queue_policy["Condition"]["ArnEquals"]["aws:SourceArn"]


@pytest.mark.parametrize("function", ["BulkCancelFunction", "ExecutionStatusFunction"])
def test_function_errors_are_retried_then_kept_in_a_queue(cfn, function):
    config = resource(cfn, f"{function}EventInvokeConfig")

    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["FailedEventsQueue", "Arn"]
    }


def test_rules_listen_on_the_right_bus_for_the_right_events(cfn):
    for lane in ("UserStopRequestsRule", "BulkStopRequestsRule"):
        stop, _ = rule_of(cfn, lane)
        assert stop["EventBusName"] == {"Ref": "CancelBus"}
        assert stop["EventPattern"]["source"] == ["app.messages"]
        assert stop["EventPattern"]["detail-type"] == ["Message Cancel Requested"]
        assert stop["EventPattern"]["detail"]["executionArn"] == [{"exists": True}]
    bulk, _ = rule_of(cfn, "BulkCancelFunctionBulkCancelRequested")
    assert bulk["EventBusName"] == {"Ref": "CancelBus"}
    assert bulk["EventPattern"]["source"] == [{"anything-but": "app.messages"}]
    ended, _ = rule_of(cfn, "ExecutionStatusFunctionAgentExecutionEnded")
    assert "EventBusName" not in ended  # Step Functions publishes on the default bus
    assert ended["EventPattern"]["detail"]["stateMachineArn"] == [{"Ref": "AgentStateMachineArn"}]
    sweep, target = rule_of(cfn, "BulkCancelFunctionStaleSweep")
    assert sweep["ScheduleExpression"] == "rate(5 minutes)"
    assert "${StaleAfterSeconds}" in target["Input"]["Fn::Sub"]


LANES = ("UserStop", "BulkStop")


@pytest.mark.parametrize("lane", LANES)
def test_stop_requests_wait_in_an_encrypted_queue_that_redrives_to_its_dead_letter_queue(cfn, lane):
    queue = resource(cfn, f"{lane}RequestsQueue")
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": [f"{lane}RequestsDeadLetterQueue", "Arn"]
    }
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 3
    # AWS's recommendation for a queue that feeds a function: six times the function's timeout.
    assert queue["VisibilityTimeout"] >= 6 * resource(cfn, f"{lane}AgentFunction")["Timeout"]
    dead_letters = resource(cfn, f"{lane}RequestsDeadLetterQueue")
    assert dead_letters["SqsManagedSseEnabled"] is True
    assert dead_letters["MessageRetentionPeriod"] == 14 * 24 * 3600
    # A message outlives neither queue's retention while it waits: SQS keeps a redriven message's
    # original enqueue time, so the dead-letter queue keeps it longer than the queue does.
    assert dead_letters["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]


@pytest.mark.parametrize("lane", LANES)
def test_only_its_rule_may_send_to_a_lanes_stop_queue(cfn, lane):
    policy = resource(cfn, f"{lane}RequestsQueuePolicy")
    assert policy["Queues"] == [{"Ref": f"{lane}RequestsQueue"}]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": [f"{lane}RequestsQueue", "Arn"]}
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [f"{lane}RequestsRule", "Arn"]}}
    }


def stop_mapping(cfn: dict[str, Any], lane: str) -> dict[str, Any]:
    mappings = resources_of_type(cfn, "AWS::Lambda::EventSourceMapping")
    [mapping] = [
        m["Properties"]
        for m in mappings.values()
        if m["Properties"]["FunctionName"] == {"Ref": f"{lane}AgentFunction"}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [f"{lane}RequestsQueue", "Arn"]}
    assert mapping["BatchSize"] == 10  # the stops of a batch are made at once (STOP_CONCURRENCY)
    assert mapping["MaximumBatchingWindowInSeconds"] == 0  # no stop is held back to fill a batch
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # No asynchronous invocation to configure.
    assert f"{lane}AgentFunctionEventInvokeConfig" not in cfn["Resources"]
    return mapping


def test_the_user_lane_stops_a_stop_of_a_hundred_messages_in_one_round_unpaced(cfn):
    mapping = stop_mapping(cfn, "UserStop")
    assert mapping["ScalingConfig"]["MaximumConcurrency"] * mapping["BatchSize"] >= 100
    function = resource(cfn, "UserStopAgentFunction")
    # Its concurrency is kept for it whatever else runs in the account, and never below the
    # queue's bound: a reservation under the poller's scale would throttle its invocations into
    # receive counts.
    assert function["ReservedConcurrentExecutions"] == mapping["ScalingConfig"]["MaximumConcurrency"]
    variables = function["Environment"]["Variables"]
    assert "STOP_EXECUTIONS_PER_SECOND" not in variables
    assert "STOP_PACE_TABLE" not in variables


def test_the_bulk_lane_is_paced_through_its_table_with_the_fewest_stoppers(cfn):
    mapping = stop_mapping(cfn, "BulkStop")
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == 2  # AWS's minimum: the pace sets the rate
    # Bounded by its queue's MaximumConcurrency: no reservation, which would throttle the poller's
    # invocations into receive counts.
    assert "ReservedConcurrentExecutions" not in resource(cfn, "BulkStopAgentFunction")
    variables = resource(cfn, "BulkStopAgentFunction")["Environment"]["Variables"]
    assert variables["STOP_EXECUTIONS_PER_SECOND"] == {"Ref": "StopExecutionsPerSecond"}
    assert variables["STOP_PACE_TABLE"] == {"Ref": "StopPaceTable"}
    pace = resource(cfn, "StopPaceTable")
    assert pace["KeySchema"] == [{"AttributeName": "lane", "KeyType": "HASH"}]
    assert pace["BillingMode"] == "PAY_PER_REQUEST"
    assert pace["SSESpecification"] == {"SSEEnabled": True}


def test_the_stop_rate_stays_under_the_smallest_stop_execution_quota(template):
    rate = template["Parameters"]["StopExecutionsPerSecond"]
    assert rate["Type"] == "Number"
    assert rate["MinValue"] == 1
    # StopExecution refills at 25 per second outside us-east-1, us-west-2 and eu-west-1, shared
    # with the account's other callers.
    assert rate["Default"] <= 25 / 2  # a full bulk lane leaves most of the refill to users


def test_dead_letter_queues_are_encrypted(cfn):
    for queue in (
        "UndeliveredEventsQueue",
        "FailedEventsQueue",
        "UserStopRequestsDeadLetterQueue",
        "BulkStopRequestsDeadLetterQueue",
    ):
        assert resource(cfn, queue)["SqsManagedSseEnabled"] is True


def test_outputs(template):
    assert {"ApiUrl", "EventBusName", "MessagesTableName", "ProjectsTableName"} <= set(template["Outputs"])
    for lane in LANES:  # what an operator watches of each lane
        for queue in (f"{lane}RequestsQueue", f"{lane}RequestsDeadLetterQueue"):
            assert template["Outputs"][f"{queue}Url"]["Value"] == {"Ref": queue}
