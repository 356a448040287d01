"""What a container builds once, on its first invocation, and reuses: clients, tables, key cache.

Nothing here runs at import, so importing a handler does no network I/O and reads no
configuration; a misconfigured function fails its first invocation naming the missing variable.
The event-driven services are imported inside their builders: their pydantic models would
otherwise add to the cold start of the HTTP function, which never uses them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TYPE_CHECKING

import boto3

from cancel_service.adapters.aws import (
    CALL_CONCURRENCY,
    CLIENT_CONFIG,
    STOP_CONCURRENCY,
    STOP_EXECUTION_CONFIG,
)
from cancel_service.adapters.cancel_events import CancelEventPublisher
from cancel_service.adapters.clerk import (
    JwksCache,
    KeySource,
    SessionAuthenticator,
    SessionTokenVerifier,
    StaticKey,
)
from cancel_service.adapters.messages import MessagesTable
from cancel_service.adapters.projects import ProjectsTable
from cancel_service.config import (
    age_index_config,
    agent_state_machine_arn,
    bulk_state_config,
    clerk_config,
    stop_pace_config,
    store_config,
)
from cancel_service.core.cancel import CancelService, ExecutorCalls

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient

    from cancel_service.adapters.age_index import AgeIndex
    from cancel_service.adapters.stop_pace import SharedPace
    from cancel_service.core.agent_outcomes import AgentOutcomes
    from cancel_service.core.agent_stops import AgentStops
    from cancel_service.core.bulk import BulkCancelService


@cache
def _dynamodb() -> DynamoDBClient:
    return boto3.client("dynamodb", config=CLIENT_CONFIG)


@cache
def _events() -> EventBridgeClient:
    return boto3.client("events", config=CLIENT_CONFIG)


def _messages() -> MessagesTable:
    return MessagesTable(store_config().messages_table, _dynamodb())


def _projects() -> ProjectsTable:
    return ProjectsTable(store_config().projects_table, _dynamodb())


# The container's executor for AWS calls. Creating it starts no thread: they start on first use
# and are reused by every later invocation of the container.
_AWS_CALLS = ThreadPoolExecutor(max_workers=CALL_CONCURRENCY, thread_name_prefix="aws-call")


# The age index's shards are read at once on their own executor: a read may come from a thread
# of the one above.
_SHARD_READS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="age-shard")


@cache
def age_index() -> AgeIndex:
    from cancel_service.adapters.age_index import AgeIndex

    config = age_index_config()
    return AgeIndex(config.table, store_config().messages_table, config.shards, _dynamodb(), _SHARD_READS)


@cache
def cancel_service() -> CancelService:
    return CancelService(
        projects=_projects(),
        messages=_messages(),
        events=CancelEventPublisher(store_config().event_bus_name, _events()),
        calls=ExecutorCalls(_AWS_CALLS),
    )


@cache
def bulk_cancel_service() -> BulkCancelService:
    from cancel_service.adapters.bulk_events import BulkEventPublisher
    from cancel_service.adapters.bulk_state import BulkStateTable
    from cancel_service.core.bulk import BulkCancelService

    state = bulk_state_config()
    return BulkCancelService(
        projects=_projects(),
        messages=_messages(),
        ages=age_index(),
        cancel_service=cancel_service(),
        events=BulkEventPublisher(store_config().event_bus_name, _events()),
        states=BulkStateTable(state.table, _dynamodb()),
        retention_seconds=state.retention_seconds,
    )


@cache
def agent_outcomes() -> AgentOutcomes:
    from cancel_service.core.agent_outcomes import AgentOutcomes

    return AgentOutcomes(messages=_messages(), cancel_service=cancel_service())


# The stopper's workers: every record of a batch (at most 10) stopped at once. Created lazily by
# the executor, so only the stoppers ever start them.
_STOPS = ThreadPoolExecutor(max_workers=STOP_CONCURRENCY, thread_name_prefix="agent-stop")


def _agent_stops(pace: SharedPace | None) -> AgentStops:
    from cancel_service.adapters.agent_executions import AgentExecutions, StopAttempts
    from cancel_service.core.agent_stops import AgentStops

    attempts = StopAttempts(pace)
    client = attempts.watch(boto3.client("stepfunctions", config=STOP_EXECUTION_CONFIG))
    return AgentStops(AgentExecutions(client, agent_state_machine_arn(), attempts), _STOPS)


@cache
def user_lane_stops() -> AgentStops:
    return _agent_stops(pace=None)


@cache
def bulk_lane_stops() -> AgentStops:
    from cancel_service.adapters.stop_pace import SharedPace

    config = stop_pace_config()
    return _agent_stops(SharedPace(_dynamodb(), config.table, "bulk", config.stops_per_second))


@cache
def session_verifier() -> SessionTokenVerifier:
    config = clerk_config()
    keys: KeySource = StaticKey(config.jwt_key) if config.jwt_key else JwksCache(config.jwks_url)
    return SessionTokenVerifier(config.issuer, config.authorized_parties, keys)


@cache
def authenticator() -> SessionAuthenticator:
    config = clerk_config()
    return SessionAuthenticator(session_verifier(), config.authorized_parties, config.publishable_key)
