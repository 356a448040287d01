"""What a container builds once, on its first invocation, and reuses: clients, tables, key cache.

Nothing here runs at import, so importing a handler does no network I/O and reads no
configuration; a misconfigured function fails its first invocation naming the missing variable.
"""

from __future__ import annotations

from functools import cache

import boto3

from cancel_service.adapters.aws import CLIENT_CONFIG
from cancel_service.adapters.cancel_events import CancelEventPublisher
from cancel_service.adapters.clerk import JwksCache, KeySource, SessionTokenVerifier, StaticKey
from cancel_service.adapters.messages import MessagesTable
from cancel_service.adapters.projects import ProjectsTable
from cancel_service.cancel import CancelService
from cancel_service.config import clerk_config, store_config


@cache
def cancel_service() -> CancelService:
    config = store_config()
    dynamodb = boto3.client("dynamodb", config=CLIENT_CONFIG)
    return CancelService(
        projects=ProjectsTable(config.projects_table, dynamodb),
        messages=MessagesTable(config.messages_table, dynamodb),
        events=CancelEventPublisher(config.event_bus_name, boto3.client("events", config=CLIENT_CONFIG)),
    )


@cache
def session_verifier() -> SessionTokenVerifier:
    config = clerk_config()
    keys: KeySource = StaticKey(config.jwt_key) if config.jwt_key else JwksCache(config.jwks_url)
    return SessionTokenVerifier(config.issuer, config.authorized_parties, keys)
