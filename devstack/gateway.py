"""A local API Gateway HTTP API (payload format 2.0) in front of the template's functions.

Like `sam local start-api`: each request that matches an HttpApi route of the template becomes
an API Gateway v2 event (devstack.apigw.http_api_event: lower-cased headers, cookies in
`event["cookies"]`, request context, path and query parameters) for the route's function, and
the function's answer becomes the HTTP response by API Gateway's rules for payload 2.0. CORS,
preflights included, is answered from the template's CorsConfiguration, as API Gateway does.

Besides the template's routes it serves the demo page at `/` and, under `/__devstack/`, a few
local-only helpers for it (a session token for the demo user, the project's messages, a reset),
and the API's document: `openapi.yaml` as `/openapi.json` and its Swagger UI at `/docs`.
Those are not part of the service and exist only here.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import yaml
from aws_lambda_powertools.event_handler.openapi import swagger_ui as powertools_swagger_ui

from devstack.apigw import http_api_event
from devstack.sample_events import DEMO_ORG, DEMO_PROJECT, DEMO_USER
from devstack.template import ROOT

if TYPE_CHECKING:
    from devstack.stack import DevStack, Route

STATIC_DIR = Path(__file__).with_name("static")
DEMO_PREFIX = "/__devstack/"
OPENAPI_PATH = ROOT / "openapi.yaml"
DOCS_ASSETS_PREFIX = "/docs/static/"
SESSION_LIFETIME = 60  # Clerk's session tokens live 60 s; the page refreshes them, as clerk-js does
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "+json", "+xml")


class ApiGateway:
    def __init__(self, stack: DevStack, host: str, port: int) -> None:
        self.stack = stack
        self.server = ThreadingHTTPServer((host, port), _handler_class(stack))
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    def serve(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="api-gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()


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


class ApiDocs:
    """The API's document and its Swagger UI page, with the UI's assets from a package (the
    Swagger UI 5 that Powertools ships, which renders OpenAPI 3.1; nothing from a CDN). The
    document is read once, when the stack starts."""

    def __init__(self, document_path: Path = OPENAPI_PATH) -> None:
        self.document = json.dumps(yaml.safe_load(document_path.read_text())).encode()
        self.page = (STATIC_DIR / "docs.html").read_bytes()
        assets_dir = Path(powertools_swagger_ui.__file__).parent
        self.assets = {path.name: path for path in assets_dir.glob("swagger-ui*") if path.is_file()}

    def find(self, path: str) -> tuple[str, bytes] | None:
        """The content type and bytes served at `path`, or None when it is not one of these."""
        if path == "/openapi.json":
            return "application/json", self.document
        if path in ("/docs", "/docs/"):
            return "text/html; charset=utf-8", self.page
        # Only the package's own file names: no path from the request reaches the file system.
        name = path.removeprefix(DOCS_ASSETS_PREFIX)
        asset = self.assets.get(name) if name != path else None
        if asset is None:
            return None
        content_type = mimetypes.guess_type(asset.name)[0] or "application/octet-stream"
        return content_type, asset.read_bytes()


def _handler_class(stack: DevStack) -> type[BaseHTTPRequestHandler]:
    docs = ApiDocs()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "devstack-apigw"

        def __getattr__(self, name: str) -> Any:
            """Every method goes to the dispatch (`do_GET`, `do_POST`, but also `do_TRACE` or
            `do_QUERY`): one with no route is a 404 as API Gateway answers it, never the 501 the
            standard library gives a method its handler does not define."""
            if name.startswith("do_"):
                return self._handle
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: API requests are logged by `_integrate`, the demo page's polls not at all."""

        # --- dispatch -------------------------------------------------------------------------

        def _handle(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            origin = self.headers.get("Origin")
            if (
                self.command == "OPTIONS"
                and stack.cors is not None
                and origin
                and self.headers.get("Access-Control-Request-Method")
            ):
                self._send(
                    204,
                    {"apigw-requestid": _request_id(), **cors_headers(stack.cors, origin, preflight=True)},
                )
                return
            route, parameters = self._match(url.path)
            if route is not None:
                self._integrate(route, parameters, url.path, url.query, body)
            elif url.path in ("/", "/index.html") and self.command in ("GET", "HEAD"):
                self._send(
                    200,
                    {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
                    (STATIC_DIR / "index.html").read_bytes(),
                )
            elif url.path.startswith(DEMO_PREFIX):
                self._demo(url.path.removeprefix(DEMO_PREFIX), parse_qs(url.query))
            elif self.command in ("GET", "HEAD") and (found := docs.find(url.path)) is not None:
                content_type, data = found
                self._send(200, {"Content-Type": content_type, "Cache-Control": "no-store"}, data)
            else:
                self._json(404, {"message": "Not Found"})

        def _match(self, path: str) -> tuple[Route | None, dict[str, str]]:
            for route in stack.routes:
                if route.method not in ("ANY", self.command):
                    continue
                match = route.pattern.fullmatch(path)
                if match:
                    return route, match.groupdict()
            return None, {}

        # --- the API Gateway integration --------------------------------------------------------

        def _integrate(
            self, route: Route, parameters: dict[str, str], path: str, query: str, body: bytes
        ) -> None:
            started = time.monotonic()
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                key = name.lower()
                separator = "; " if key == "cookie" else ","
                headers[key] = f"{headers[key]}{separator}{value}" if key in headers else value
            client_ip = self.client_address[0]
            headers.setdefault("x-forwarded-for", client_ip)
            headers.setdefault("x-forwarded-port", str(stack.api_port))
            headers.setdefault("x-forwarded-proto", "http")
            headers.setdefault("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}")
            content_type = headers.get("content-type", "").lower()
            payload: str | bytes | None = None
            if body:
                payload = body
                if any(kind in content_type for kind in _TEXT_TYPES):
                    try:
                        payload = body.decode("utf-8")
                    except UnicodeDecodeError:
                        payload = body
            event = http_api_event(
                self.command,
                path,
                headers=headers,
                body=payload,
                query=query,
                source_ip=client_ip,
                route_key=route.route_key,
                path_parameters=parameters or None,
            )
            invocation = stack.invoke(route.function, event)
            extra = cors_headers(stack.cors, self.headers.get("Origin"), preflight=False)
            extra["apigw-requestid"] = event["requestContext"]["requestId"]
            if invocation.failed:
                status = 500
                self._json(500, {"message": "Internal Server Error"}, extra)
            else:
                status = self._respond(invocation.result, extra)
            elapsed = (time.monotonic() - started) * 1000
            stack.log(f"{self.command} {path} -> {route.function} -> {status} ({elapsed:.0f} ms)")

        def _respond(self, result: Any, extra: dict[str, str]) -> int:
            """Payload format 2.0: a statusCode-shaped object is the response; anything else is a
            200 JSON body."""
            if isinstance(result, dict) and "statusCode" in result:
                status = int(result["statusCode"])
                headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
                raw = result.get("body")
                text = "" if raw is None else raw if isinstance(raw, str) else json.dumps(raw)
                data = base64.b64decode(text) if result.get("isBase64Encoded") else text.encode()
                cookies = [str(cookie) for cookie in result.get("cookies") or []]
            else:
                status, headers, data, cookies = (
                    200,
                    {"Content-Type": "application/json"},
                    json.dumps(result).encode(),
                    [],
                )
            headers = {
                **{k: v for k, v in headers.items() if not k.lower().startswith("access-control-")},
                **extra,
            }
            self._send(status, headers, data, cookies)
            return status

        # --- the demo's local-only helpers ------------------------------------------------------

        def _demo(self, name: str, query: dict[str, list[str]]) -> None:
            if name == "session" and self.command == "GET":
                token = stack.mint(DEMO_USER, lifetime=SESSION_LIFETIME)
                self._json(
                    200,
                    {
                        "token": token,
                        "expiresIn": SESSION_LIFETIME,
                        "userId": DEMO_USER,
                        "orgId": DEMO_ORG,
                        "projectId": DEMO_PROJECT,
                    },
                )
            elif name == "messages" and self.command == "GET":
                project_id = (query.get("projectId") or [DEMO_PROJECT])[0]
                self._json(200, {"projectId": project_id, "messages": stack.demo_messages(project_id)})
            elif name == "reset" and self.command == "POST":
                self._json(200, {"processing": stack.seed_demo()})
            elif name == "info" and self.command == "GET":
                self._json(200, stack.describe())
            else:
                self._json(404, {"message": "Not Found"})

        # --- responses --------------------------------------------------------------------------

        def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            self._send(
                status,
                {"Content-Type": "application/json", "Cache-Control": "no-store", **(headers or {})},
                json.dumps(payload).encode(),
            )

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

    return Handler


def _request_id() -> str:
    return base64.b32encode(uuid.uuid4().bytes).decode()[:16]
