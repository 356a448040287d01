"""Operating the service, as the template sets it up: alarms on every queue, function, rule and
on the service's own metrics, that notify the given topic or e-mail (or nobody, said so); the
dashboard's widgets, which name only metrics the code emits; the HTTP API's access log and
throttle, and the concurrency kept for the user's Stop."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import pytest

from devstack.template import Template, load_template, resources_of_type
from support.cfn import FUNCTIONS, PARAMETERS, resource, translate
from support.metric_names import dependency_names, emitted_metrics

TOPIC = "arn:aws:sns:eu-west-1:210987654321:on-call"
EMAIL = "on-call@example.com"


def alarms(cfn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: a["Properties"] for name, a in resources_of_type(cfn, "AWS::CloudWatch::Alarm").items()}


def metrics_of(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm watches: its own, or those of its metric math."""
    if "MetricName" in alarm:
        return [alarm]
    return [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]


def watching(cfn: dict[str, Any], namespace: str, metric: str, dimension: str, value: Any) -> list[str]:
    """The alarms on `metric` of `namespace` whose `dimension` is `value`."""
    return [
        name
        for name, alarm in alarms(cfn).items()
        for watched in metrics_of(alarm)
        if (watched["Namespace"], watched["MetricName"]) == (namespace, metric)
        and {"Name": dimension, "Value": value} in watched["Dimensions"]
    ]


def queues_feeding_functions(cfn: dict[str, Any]) -> set[str]:
    mappings = resources_of_type(cfn, "AWS::Lambda::EventSourceMapping").values()
    return {m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0] for m in mappings}


def test_every_queue_has_its_alarm(cfn):
    queues = set(resources_of_type(cfn, "AWS::SQS::Queue"))
    lanes = queues_feeding_functions(cfn)
    assert lanes  # the stop lanes
    for queue in queues:
        name = {"Fn::GetAtt": [queue, "QueueName"]}
        if queue in lanes:
            # A lane: how long its oldest stop has waited.
            [alarm] = watching(cfn, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", name)
            assert alarms(cfn)[alarm]["Statistic"] == "Maximum"
            assert alarms(cfn)[alarm]["DatapointsToAlarm"] < alarms(cfn)[alarm]["EvaluationPeriods"]
        else:
            # A dead-letter or failed-events queue: any message in it is something given up on.
            [alarm] = watching(cfn, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", name)
            properties = alarms(cfn)[alarm]
            assert (properties["Statistic"], properties["ComparisonOperator"], properties["Threshold"]) == (
                "Maximum",
                "GreaterThanThreshold",
                0,
            )


def test_the_backlog_alarm_leaves_room_for_a_full_backlog_at_the_configured_rate(template):
    parameters = template["Parameters"]
    age = parameters["BulkStopAgeAlarmSeconds"]["Default"]
    # The largest bulk docs/performance.md measures (100,000 messages) drains at the default rate in silence.
    assert age > 100_000 / parameters["StopExecutionsPerSecond"]["Default"]


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_error_and_throttle_alarms(cfn, function, metric):
    [alarm] = watching(cfn, "AWS/Lambda", metric, "FunctionName", {"Ref": function})
    properties = alarms(cfn)[alarm]
    assert (properties["Statistic"], properties["Threshold"]) == ("Sum", 0)
    # M of N: a single retried failure does not page anyone.
    assert 1 < properties["DatapointsToAlarm"] < properties["EvaluationPeriods"]


def test_the_http_function_alarms_before_its_timeout(cfn):
    [alarm] = watching(cfn, "AWS/Lambda", "Duration", "FunctionName", {"Ref": "CancelFunction"})
    properties = alarms(cfn)[alarm]
    timeout_ms = resource(cfn, "CancelFunction")["Timeout"] * 1000
    assert properties["ExtendedStatistic"] == "p99"
    assert timeout_ms / 2 <= properties["Threshold"] < timeout_ms


def test_every_rule_has_a_failed_invocations_alarm(cfn):
    for rule, definition in resources_of_type(cfn, "AWS::Events::Rule").items():
        custom_bus = "EventBusName" in definition["Properties"]
        # The rule's name is the last part of its ARN (rule/<bus>/<name> on a custom bus).
        name = {"Fn::Select": [2 if custom_bus else 1, {"Fn::Split": ["/", {"Fn::GetAtt": [rule, "Arn"]}]}]}
        [alarm] = watching(cfn, "AWS/Events", "FailedInvocations", "RuleName", name)
        dimensions = alarms(cfn)[alarm]["Dimensions"]
        # EventBridge publishes a custom bus's rule metrics with the bus as a dimension too.
        assert ({"Name": "EventBusName", "Value": {"Ref": "CancelBus"}} in dimensions) is custom_bus


def test_the_api_alarms_on_the_cancel_routes_5xx_rate_and_p99_latency(cfn):
    route = {"Name": "Resource", "Value": "/api/messages/cancel"}
    by_metric = {
        watched["MetricName"]: alarm
        for alarm in alarms(cfn).values()
        for watched in metrics_of(alarm)
        if watched["Namespace"] == "AWS/ApiGateway" and route in watched["Dimensions"]
    }
    rate = by_metric["5xx"]
    assert by_metric["Count"] is rate  # errors per request, not a count
    assert [q["Expression"] for q in rate["Metrics"] if q.get("ReturnData")] == [
        "IF(requests >= 10, 100 * errors / requests, 0)"
    ]
    assert by_metric["Latency"]["ExtendedStatistic"] == "p99"


def test_the_services_own_failure_metrics_are_alarmed(cfn):
    service = {"Name": "service", "Value": "cancel-service"}
    watched = {
        metric["MetricName"]: metric
        for alarm in alarms(cfn).values()
        for metric in metrics_of(alarm)
        if metric["Namespace"] == "StopTheAI"
    }
    assert {"DependencyFailures", "AgentStopsFailed", "AgentStopLatency"} <= set(watched)
    emitted = emitted_metrics()
    for name, metric in watched.items():
        assert service in metric["Dimensions"]
        assert frozenset(d["Name"] for d in metric["Dimensions"]) in emitted[name], name
    # Every dependency the code can report failing is in the alarm's sum.
    [dependencies] = [
        alarm for alarm in alarms(cfn).values() if "DependencyFailures" in map(_name, metrics_of(alarm))
    ]
    summed = {
        dimension["Value"]
        for metric in metrics_of(dependencies)
        for dimension in metric["Dimensions"]
        if dimension["Name"] == "dependency"
    }
    assert summed == dependency_names()


def _name(metric: dict[str, Any]) -> str:
    return str(metric["MetricName"])


def test_every_alarm_reads_missing_data_as_fine_and_says_what_to_do(cfn):
    for name, alarm in alarms(cfn).items():
        assert alarm["TreatMissingData"] == "notBreaching", name
        description = alarm["AlarmDescription"]
        text = description if isinstance(description, str) else description["Fn::Sub"]
        assert len(text) > 80, name


def deployed(parameters: dict[str, str]) -> Template:
    """The translated template as CloudFormation resolves it with these parameter values."""
    return _deployed(tuple(sorted(parameters.items())))


@functools.cache
def _deployed(parameters: tuple[tuple[str, str], ...]) -> Template:
    values = {**PARAMETERS, **dict(parameters)}
    return Template(values, raw=translate(_template(), values))


@functools.cache
def _template() -> dict[str, Any]:
    return load_template()


@pytest.mark.parametrize(
    ("parameters", "notified"),
    [
        ({}, []),
        ({"AlarmTopicArn": TOPIC}, [TOPIC]),
        ({"AlarmEmail": EMAIL}, ["email-topic"]),
        ({"AlarmTopicArn": TOPIC, "AlarmEmail": EMAIL}, [TOPIC, "email-topic"]),
    ],
    ids=["nobody", "topic", "email", "topic-and-email"],
)
def test_every_alarm_notifies_the_given_topic_and_email_when_it_fires_and_clears(parameters, notified):
    stack = deployed(parameters)
    email_topic = stack.resolve({"Ref": "AlarmEmailTopic"})
    expected = [email_topic if target == "email-topic" else target for target in notified]
    found = stack.of_type("AWS::CloudWatch::Alarm")
    assert len(found) >= 20
    for name, alarm in found.items():
        properties = alarm["Properties"]
        assert stack.resolve(properties["AlarmActions"]) == expected, name
        assert stack.resolve(properties["OKActions"]) == expected, name
    topics = stack.of_type("AWS::SNS::Topic")
    if "AlarmEmail" in parameters:
        [topic] = topics.values()
        subscriptions = stack.resolve(topic["Properties"])["Subscription"]
        assert subscriptions == [{"Protocol": "email", "Endpoint": EMAIL}]
    else:
        assert topics == {}  # a topic is made only for an e-mail


def test_the_stack_says_when_the_alarms_tell_nobody():
    quiet = deployed({}).resolve(_template()["Outputs"]["AlarmNotifications"]["Value"])
    assert quiet.startswith("Nobody")
    told = deployed({"AlarmTopicArn": TOPIC}).resolve(_template()["Outputs"]["AlarmNotifications"]["Value"])
    assert TOPIC in told


# --- the dashboard ------------------------------------------------------------------------------


def dashboard_widgets(cfn: dict[str, Any]) -> list[dict[str, Any]]:
    [dashboard] = resources_of_type(cfn, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    # Each ${Name} the template substitutes becomes a JSON-safe placeholder.
    widgets: list[dict[str, Any]] = json.loads(re.sub(r"\$\{([^}!]+)\}", r"<\1>", body))["widgets"]
    return widgets


def widget_metrics(widget: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric, dimensions) of every metric a widget graphs, its SEARCH expressions'
    included."""
    found = []
    for entry in widget["properties"]["metrics"]:
        if isinstance(entry[0], dict):
            expression = entry[0]["expression"]
            for keys, metric in re.findall(r"\{([^}]*)\} MetricName=\"(\w+)\"", expression):
                namespace, *dimensions = keys.split(",")
                found.append((namespace, metric, dict.fromkeys(dimensions, "*")))
            continue
        fields = [item for item in entry if not isinstance(item, dict)]
        namespace, metric, *pairs = fields
        found.append((namespace, metric, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return found


def test_the_dashboard_shows_what_an_operator_watches(cfn):
    titles = " | ".join(widget["properties"]["title"] for widget in dashboard_widgets(cfn))
    for topic in (
        "requests by answer",
        "latency",
        "Messages cancelled",
        "backlog",
        "oldest",
        "Agent stops",
        "Agent stop latency",
        "Dead letters",
        "Bulk cancels by outcome",
        "errors",
        "throttles",
    ):
        assert topic in titles


def test_the_dashboard_names_only_metrics_the_code_emits(cfn):
    variables = Template(PARAMETERS).functions()["CancelFunction"].environment
    namespace, service = variables["POWERTOOLS_METRICS_NAMESPACE"], variables["POWERTOOLS_SERVICE_NAME"]
    emitted = emitted_metrics()
    own = [
        (metric, dimensions)
        for widget in dashboard_widgets(cfn)
        for ns, metric, dimensions in widget_metrics(widget)
        if ns == namespace
    ]
    assert len(own) >= 10
    for metric, dimensions in own:
        assert metric in emitted, metric
        # CloudWatch graphs a metric only with exactly the dimensions it was emitted with.
        assert frozenset(dimensions) in emitted[metric], (metric, dimensions, emitted[metric])
        assert dimensions.get("service") in (service, "*"), metric  # Powertools' default dimension


def test_the_dashboard_graphs_every_queue_and_function_of_the_template(cfn):
    graphed = {
        value
        for widget in dashboard_widgets(cfn)
        for ns, _metric, dimensions in widget_metrics(widget)
        if ns in ("AWS/SQS", "AWS/Lambda")
        for value in dimensions.values()
    }
    for queue in resources_of_type(cfn, "AWS::SQS::Queue"):
        assert f"<{queue}.QueueName>" in graphed
    for function in FUNCTIONS:
        assert f"<{function}>" in graphed


# --- access logs, throttle, concurrency ---------------------------------------------------------


def http_api_stage(cfn: dict[str, Any]) -> dict[str, Any]:
    [stage] = resources_of_type(cfn, "AWS::ApiGatewayV2::Stage").values()
    return dict(stage["Properties"])


def test_the_http_api_writes_json_access_logs_without_headers_or_tokens(cfn):
    settings = http_api_stage(cfn)["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]}
    assert resource(cfn, "HttpApiAccessLogGroup")["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    line = json.loads(re.sub(r"\$context\.[\w.]+", "1", settings["Format"]))
    required = {"requestId", "routeKey", "status", "responseLatency", "integrationErrorMessage", "sourceIp"}
    assert required <= set(line)
    variables = re.findall(r"\$context\.([\w.]+)", settings["Format"])
    assert not [v for v in variables if "header" in v.lower() or "authorizer" in v or "cookie" in v.lower()]


def test_the_api_throttles_before_a_flood_costs_the_functions_concurrency(cfn, template):
    settings = http_api_stage(cfn)["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    assert settings["DetailedMetricsEnabled"] is True  # the cancel route's own metrics, alarmed on
    parameters = template["Parameters"]
    reserved = resource(cfn, "CancelFunction")["ReservedConcurrentExecutions"]
    # A request holds an instance about a second at most (a cold start included): what the
    # throttle lets through in a second, the burst and a second's rate, fits in the reservation,
    # whatever values the parameters take.
    rate, burst = parameters["ApiThrottlingRateLimit"], parameters["ApiThrottlingBurstLimit"]
    assert rate["Default"] + burst["Default"] <= reserved
    assert rate["MaxValue"] + burst["MaxValue"] <= reserved


@pytest.mark.parametrize("capped", ["BulkCancelFunction", "ExecutionStatusFunction"])
def test_the_asynchronous_functions_are_capped_below_the_users_reservation(cfn, capped):
    cap = resource(cfn, capped)["ReservedConcurrentExecutions"]
    user_path = (
        resource(cfn, "CancelFunction")["ReservedConcurrentExecutions"]
        + resource(cfn, "UserStopAgentFunction")["ReservedConcurrentExecutions"]
    )
    assert 1 <= cap < user_path
    # An invocation over the cap waits in Lambda's asynchronous queue: retried, and kept after
    # its retries, never lost.
    assert resource(cfn, f"{capped}EventInvokeConfig")["DestinationConfig"]["OnFailure"]
