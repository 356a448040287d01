"""Calls the HTTP function the way API Gateway would, and reads its answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cancel_service.handlers import cancel_http
from devstack.apigw import http_api_event
from support.constants import CANCEL_PATH


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def invoke(event: dict[str, Any], context: Any) -> Answer:
    response = cancel_http.handler(event, context)
    return Answer(response["statusCode"], response.get("headers", {}), json.loads(response["body"]))


def post_cancel(
    context: Any,
    body: Any = None,
    *,
    token: str | None = None,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    raw_body: str | bytes | None = None,
) -> Answer:
    all_headers = {"content-type": "application/json"}
    if token is not None:
        all_headers["authorization"] = f"Bearer {token}"
    if cookie is not None:
        all_headers["cookie"] = cookie
    all_headers.update(headers or {})
    payload = raw_body if raw_body is not None else json.dumps(body)
    return invoke(http_api_event("POST", CANCEL_PATH, headers=all_headers, body=payload), context)
