"""Fault injection for the function's AWS clients: the real (moto) client does the work, and
chosen calls fail the way AWS fails them. Installed by replacing `boto3.client` for the function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError


class ClientWithFaults:
    """Wraps a real client: records every operation and lets a test intercept some of them."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.intercept: dict[str, Callable[..., Any]] = {}

    @property
    def real(self) -> Any:
        return self._client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or name.startswith(("get_paginator", "meta")):
            return attribute

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            if name in self.intercept:
                return self.intercept[name](**kwargs)
            return attribute(**kwargs)

        return call

    def get_paginator(self, operation: str) -> Any:
        paginator = self._client.get_paginator(operation)
        recorder = self

        class RecordingPaginator:
            def paginate(self, **kwargs: Any) -> Any:
                recorder.calls.append((operation, kwargs))
                return paginator.paginate(**kwargs)

        return RecordingPaginator()


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


def install(monkeypatch: pytest.MonkeyPatch) -> dict[str, ClientWithFaults]:
    """Every client the function creates from now on is wrapped; returned by service name."""
    created: dict[str, ClientWithFaults] = {}
    real_factory: Callable[..., Any] = boto3.client

    def factory(service_name: str, *args: Any, **kwargs: Any) -> ClientWithFaults:
        created[service_name] = ClientWithFaults(real_factory(service_name, *args, **kwargs))
        return created[service_name]

    monkeypatch.setattr(boto3, "client", factory)
    return created
