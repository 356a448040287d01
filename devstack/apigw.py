"""API Gateway HTTP API (payload format 2.0) rules: its events, its routes, its CORS headers and
how a function's answer becomes the HTTP response. Pure functions; devstack.gateway serves them."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from devstack.constants import ACCOUNT
from devstack.template import FunctionSpec


def http_api_event(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: str | bytes | None = None,
    query: str = "",
    source_ip: str = "127.0.0.1",
    route_key: str | None = None,
    now: float | None = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Header names are lower-cased and `cookie` headers move to `cookies`, as API Gateway does.

    A query string also arrives parsed in `queryStringParameters` (repeated names joined by
    commas), and a route with path variables gets them in `pathParameters`.
    """
    lowered: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in (headers or {}).items():
        if name.lower() == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        else:
            lowered[name.lower()] = value
    moment = time.time() if now is None else now
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": lowered.get("host", "localhost"),
            "domainPrefix": lowered.get("host", "localhost").split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key or f"{method} {path}",
            "stage": "$default",
            "time": datetime.fromtimestamp(moment, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(moment * 1000),
        },
        "isBase64Encoded": isinstance(body, bytes),
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        parameters: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            parameters[name] = f"{parameters[name]},{value}" if name in parameters else value
        event["queryStringParameters"] = parameters
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body is not None:
        event["body"] = base64.b64encode(body).decode() if isinstance(body, bytes) else body
    return event


@dataclass
class Route:
    method: str  # upper case, or ANY
    path: str  # template path, e.g. /api/messages/{id}; "$default" for the default route
    function: str
    pattern: re.Pattern[str]
    specificity: tuple[int, int]

    @classmethod
    def of(cls, method: str, path: str, function: str) -> Route:
        if path == "$default":
            return cls("ANY", path, function, re.compile(".*"), (-1, -1))
        regex, literal = "", 0
        for segment in path.strip("/").split("/"):
            if segment.startswith("{") and segment.endswith("+}"):
                regex += f"/(?P<{segment[1:-2]}>.+)"
            elif segment.startswith("{") and segment.endswith("}"):
                regex += f"/(?P<{segment[1:-1]}>[^/]+)"
            else:
                regex += "/" + re.escape(segment)
                literal += 1
        return cls(method.upper(), path, function, re.compile(regex or "/"), (literal, len(path)))

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


def http_api_routes(functions: dict[str, FunctionSpec]) -> list[Route]:
    """The HttpApi routes of the template's functions, most specific first (API Gateway's order)."""
    routes = [
        Route.of(
            event.properties.get("Method", "ANY"), event.properties.get("Path", "$default"), spec.logical_id
        )
        for spec in functions.values()
        for event in spec.events
        if event.type == "HttpApi"
    ]
    return sorted(routes, key=lambda route: route.specificity, reverse=True)


def match_route(routes: list[Route], method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    for route in routes:
        if route.method in ("ANY", method) and (match := route.pattern.fullmatch(path)):
            return route, match.groupdict()
    return None, {}


def cors_headers(cors: dict[str, Any] | None, origin: str | None, *, preflight: bool) -> dict[str, str]:
    """The CORS headers API Gateway adds for `origin` under `cors` (none for a foreign origin)."""
    if cors is None or not origin:
        return {}
    allowed = [str(o) for o in cors.get("AllowOrigins", [])]
    if origin not in allowed and "*" not in allowed:
        return {}
    credentials = bool(cors.get("AllowCredentials"))
    headers = {"Access-Control-Allow-Origin": origin if (credentials or "*" not in allowed) else "*"}
    if credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    if preflight:
        if cors.get("AllowMethods"):
            headers["Access-Control-Allow-Methods"] = ",".join(cors["AllowMethods"])
        if cors.get("AllowHeaders"):
            headers["Access-Control-Allow-Headers"] = ",".join(cors["AllowHeaders"])
        if cors.get("MaxAge") is not None:
            headers["Access-Control-Max-Age"] = str(cors["MaxAge"])
    elif cors.get("ExposeHeaders"):
        headers["Access-Control-Expose-Headers"] = ",".join(cors["ExposeHeaders"])
    return headers


TOO_MANY_REQUESTS = b'{"message":"Too Many Requests"}'


@dataclass
class RouteThrottle:
    """A stage's route throttling (DefaultRouteSettings): a token bucket per route, `burst` deep,
    refilled at `rate` per second. A request that finds its route's bucket empty is answered 429
    by API Gateway itself; no function runs for it."""

    rate: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # route: (tokens, at)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, route_key: str, now: float | None = None) -> bool:
        moment = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._buckets.get(route_key, (float(self.burst), moment))
            tokens = min(float(self.burst), tokens + (moment - at) * self.rate)
            admitted = tokens >= 1
            self._buckets[route_key] = (tokens - 1 if admitted else tokens, moment)
            return admitted


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str]


def http_response(result: Any) -> HttpResponse:
    """Payload format 2.0: a statusCode-shaped object is the response; anything else is a 200
    JSON body. A function's own CORS headers are dropped: API Gateway's CORS answers for it."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return HttpResponse(200, {"Content-Type": "application/json"}, json.dumps(result).encode(), [])
    raw = result.get("body")
    text = "" if raw is None else raw if isinstance(raw, str) else json.dumps(raw)
    headers = {
        str(name): str(value)
        for name, value in (result.get("headers") or {}).items()
        if not str(name).lower().startswith("access-control-")
    }
    return HttpResponse(
        int(result["statusCode"]),
        headers,
        base64.b64decode(text) if result.get("isBase64Encoded") else text.encode(),
        [str(cookie) for cookie in result.get("cookies") or []],
    )


def request_id() -> str:
    """An id shaped like API Gateway's `apigw-requestid`."""
    return base64.b32encode(uuid.uuid4().bytes).decode()[:16]
