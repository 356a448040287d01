"""Configuration from the environment, read once per container and validated.

A missing variable is a deployment error: it fails the first invocation with a message that
names the variable, instead of falling back to a default that would hide it.
"""

from __future__ import annotations

import math
import os
from functools import cache
from typing import NamedTuple


class ConfigurationError(RuntimeError):
    """The function's environment is incomplete or invalid."""


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is required but not set")
    return value


def _optional(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _positive_number(name: str) -> float:
    text = _required(name)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"environment variable {name} must be a positive number, not {text!r}")
    return value


def _positive_integer(name: str) -> int:
    text = _required(name)
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise ConfigurationError(f"environment variable {name} must be a positive integer, not {text!r}")
    return int(text)


class StoreConfig(NamedTuple):
    """Where messages, projects and cancel events live (every function needs this)."""

    messages_table: str
    projects_table: str
    event_bus_name: str


class ClerkConfig(NamedTuple):
    """How Clerk session tokens are verified (HTTP function only)."""

    issuer: str
    jwks_url: str
    authorized_parties: frozenset[str]
    jwt_key: str | None
    publishable_key: str | None


@cache
def agent_state_machine_arn() -> str:
    """The agent's state machine (stop function only): the one whose executions may be stopped."""
    return _required("AGENT_STATE_MACHINE_ARN")


class StopPaceConfig(NamedTuple):
    """The bulk lane's StopExecution pace (bulk stopper only): the calls per second of all its
    instances together, and the table whose item they share it through."""

    stops_per_second: float
    table: str


@cache
def stop_pace_config() -> StopPaceConfig:
    return StopPaceConfig(
        stops_per_second=_positive_number("STOP_EXECUTIONS_PER_SECOND"), table=_required("STOP_PACE_TABLE")
    )


class BulkStateConfig(NamedTuple):
    """Where bulks keep their state, and for how long (bulk function only)."""

    table: str
    retention_seconds: int


@cache
def bulk_state_config() -> BulkStateConfig:
    return BulkStateConfig(
        table=_required("BULK_STATE_TABLE"),
        retention_seconds=_positive_integer("BULK_STATE_RETENTION_SECONDS"),
    )


class AgeIndexConfig(NamedTuple):
    """The age index table and its shard count (the stream function and the bulk function)."""

    table: str
    shards: int


@cache
def age_index_config() -> AgeIndexConfig:
    return AgeIndexConfig(table=_required("AGE_INDEX_TABLE"), shards=_positive_integer("AGE_INDEX_SHARDS"))


@cache
def store_config() -> StoreConfig:
    return StoreConfig(
        messages_table=_required("MESSAGES_TABLE"),
        projects_table=_required("PROJECTS_TABLE"),
        event_bus_name=_required("EVENT_BUS_NAME"),
    )


@cache
def clerk_config() -> ClerkConfig:
    issuer = _required("CLERK_ISSUER")
    parties = _optional("CLERK_AUTHORIZED_PARTIES") or ""
    jwt_key = _optional("CLERK_JWT_KEY")
    return ClerkConfig(
        issuer=issuer,
        jwks_url=_optional("CLERK_JWKS_URL") or f"{issuer.rstrip('/')}/.well-known/jwks.json",
        authorized_parties=frozenset(p.strip() for p in parties.split(",") if p.strip()),
        # Environment variables often carry PEM newlines escaped as "\n".
        jwt_key=jwt_key.replace("\\n", "\n") if jwt_key else None,
        publishable_key=_optional("CLERK_PUBLISHABLE_KEY"),
    )
