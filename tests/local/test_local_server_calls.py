"""The local stack's moto server (devstack.server_calls) finds the service of each host once: every
call still reaches its own service, and the lookup is not made again for a host it has seen."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

from devstack.aws import LocalAws

# moto's own lookup, as collected: a local stack started in this process before the test has
# replaced it for the process's life.
MOTO_LOOKUP = DomainDispatcherApplication.get_backend_for_host
ROUNDS = 3


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAws]:
    """The local stack's moto server, installed on moto's own lookup; moto's own again after."""
    monkeypatch.setattr(DomainDispatcherApplication, "get_backend_for_host", MOTO_LOOKUP)
    LocalAws("127.0.0.1", 0).stop()  # a second stack in the same process keeps the one cache
    local = LocalAws("127.0.0.1", 0)
    try:
        yield local
    finally:
        local.stop()


def test_each_call_reaches_its_service_and_each_host_is_looked_up_once(aws: LocalAws) -> None:
    sqs, dynamodb, sfn = aws.sqs(), aws.dynamodb(), aws.stepfunctions()
    name = f"server-calls-{uuid.uuid4().hex}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    lookups = DomainDispatcherApplication.get_backend_for_host.cache_info  # type: ignore[attr-defined]

    def one_round() -> tuple[str, str, int]:
        return (
            sqs.get_queue_url(QueueName=name)["QueueUrl"],
            dynamodb.describe_table(TableName=name)["Table"]["TableName"],
            len(sfn.list_state_machines()["stateMachines"]),  # Step Functions' answer, not an error
        )

    answers = [one_round()]
    looked_up = lookups().misses
    answers += [one_round() for _ in range(ROUNDS - 1)]

    assert answers[0][:2] == (url, name)
    assert answers == [answers[0]] * ROUNDS
    assert lookups().misses == looked_up  # the later rounds found every host kept
    assert lookups().hits >= (ROUNDS - 1) * 3
