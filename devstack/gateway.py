"""A local API Gateway HTTP API in front of the template's functions, like `sam local start-api`.

Each request that matches an HttpApi route of the template becomes an API Gateway v2 event for
the route's function, and the function's answer becomes the HTTP response (devstack.apigw has
the rules). CORS, preflights included, is answered from the template's CorsConfiguration, as
API Gateway does. Any other request is offered to the local pages it is given (devstack.pages:
the demo page, the API document); a request none of them serves is API Gateway's 404.

The gateway knows nothing of the stack: it is given the routes, the CORS configuration, how to
invoke a function and the pages, once its port is bound.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from devstack.apigw import (
    TOO_MANY_REQUESTS,
    Route,
    RouteThrottle,
    cors_headers,
    http_api_event,
    http_response,
    match_route,
    request_id,
)
from devstack.lambdas import Invocation

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "+json", "+xml")
NOT_FOUND = b'{"message": "Not Found"}'


@dataclass
class Page:
    """A local page's answer; never cached (Cache-Control: no-store)."""

    status: int
    content_type: str
    body: bytes


class Pages(Protocol):
    def find(self, method: str, path: str, query: dict[str, list[str]]) -> Page | None:
        """The answer to this request, or None when it is not one of these pages."""


@dataclass
class HttpApi:
    """What the gateway serves: the template's routes and CORS, and how to reach a function."""

    routes: list[Route]
    cors: dict[str, Any] | None
    invoke: Callable[[str, dict[str, Any]], Invocation]
    log: Callable[[str], None]
    pages: Sequence[Pages]
    throttle: RouteThrottle | None = None


class ApiGateway:
    def __init__(self, host: str, port: int) -> None:
        """Bind the port now (the origin is a template parameter); serve once `serve` is called."""
        self.server = _Server((host, port), _Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.origin = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def serve(self, api: HttpApi) -> None:
        self.server.api = api
        self._thread = threading.Thread(target=self.server.serve_forever, name="api-gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()


class _Server(ThreadingHTTPServer):
    api: HttpApi


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "devstack-apigw"
    server: _Server

    def __getattr__(self, name: str) -> Any:
        """Every method goes to the dispatch (`do_GET`, `do_POST`, but also `do_TRACE` or
        `do_QUERY`): one with no route is a 404 as API Gateway answers it, never the 501 the
        standard library gives a method its handler does not define."""
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: API requests are logged by `_integrate`, the demo page's polls not at all."""

    def _handle(self) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        origin = self.headers.get("Origin")
        if self._is_preflight(api, origin):
            self._send(
                204, {"apigw-requestid": request_id(), **cors_headers(api.cors, origin, preflight=True)}
            )
            return
        route, parameters = match_route(api.routes, self.command, url.path)
        if route is not None:
            self._integrate(api, route, parameters, url.path, url.query, body)
            return
        query = parse_qs(url.query)
        page = next(
            (page for pages in api.pages if (page := pages.find(self.command, url.path, query))), None
        )
        if page is None:
            page = Page(404, "application/json", NOT_FOUND)
        self._send(page.status, {"Content-Type": page.content_type, "Cache-Control": "no-store"}, page.body)

    def _is_preflight(self, api: HttpApi, origin: str | None) -> bool:
        return bool(
            self.command == "OPTIONS"
            and api.cors is not None
            and origin
            and self.headers.get("Access-Control-Request-Method")
        )

    def _integrate(
        self, api: HttpApi, route: Route, parameters: dict[str, str], path: str, query: str, body: bytes
    ) -> None:
        started = time.monotonic()
        if api.throttle is not None and not api.throttle.admit(route.route_key):
            self._send(
                429,
                {
                    "Content-Type": "application/json",
                    "apigw-requestid": request_id(),
                    **cors_headers(api.cors, self.headers.get("Origin"), preflight=False),
                },
                TOO_MANY_REQUESTS,
            )
            api.log(f"{self.command} {path} -> 429 (route throttle)")
            return
        headers = self._event_headers()
        event = http_api_event(
            self.command,
            path,
            headers=headers,
            body=_payload(body, headers.get("content-type", "").lower()),
            query=query,
            source_ip=self.client_address[0],
            route_key=route.route_key,
            path_parameters=parameters or None,
        )
        invocation = api.invoke(route.function, event)
        extra = cors_headers(api.cors, self.headers.get("Origin"), preflight=False)
        extra["apigw-requestid"] = event["requestContext"]["requestId"]
        if invocation.failed:
            status = 500
            self._send(500, {"Content-Type": "application/json", "Cache-Control": "no-store", **extra},
                       b'{"message": "Internal Server Error"}')  # fmt: skip
        else:
            response = http_response(invocation.result)
            status = response.status
            self._send(status, {**response.headers, **extra}, response.body, response.cookies)
        elapsed = (time.monotonic() - started) * 1000
        api.log(f"{self.command} {path} -> {route.function} -> {status} ({elapsed:.0f} ms)")

    def _event_headers(self) -> dict[str, str]:
        """The request's headers as API Gateway passes them on: repeated ones joined, and the
        forwarding and tracing headers it adds."""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            separator = "; " if key == "cookie" else ","
            headers[key] = f"{headers[key]}{separator}{value}" if key in headers else value
        headers.setdefault("x-forwarded-for", self.client_address[0])
        headers.setdefault("x-forwarded-port", str(self.server.server_address[1]))
        headers.setdefault("x-forwarded-proto", "http")
        headers.setdefault("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}")
        return headers

    def _send(
        self, status: int, headers: dict[str, str], data: bytes = b"", cookies: list[str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        for cookie in cookies or []:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _payload(body: bytes, content_type: str) -> str | bytes | None:
    """A text body arrives as text, anything else base64-encoded (as bytes here)."""
    if not body:
        return None
    if any(kind in content_type for kind in _TEXT_TYPES):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return body
    return body
