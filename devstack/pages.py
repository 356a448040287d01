"""The local stack's own pages, served by devstack.gateway beside the template's routes; not part
of the service and never deployed.

- The demo page at `/`, and under `/__devstack/` what it needs: a session token for the demo
  user, the project's messages with their agents' status, a reset of the demo data, and the
  stack's description (`info`, which `invoke` and `token` use to find a running stack).
- The API's document: `openapi.yaml` as `/openapi.json` and its Swagger UI at `/docs`, with the
  UI's assets from a package (the Swagger UI 5 that Powertools ships, which renders OpenAPI 3.1;
  nothing from a CDN). The document is read once, when the stack starts.
"""

from __future__ import annotations

import importlib.util
import json
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from devstack.constants import ROOT
from devstack.demo import DEMO_ORG, DEMO_PROJECT, DEMO_USER, DemoData
from devstack.gateway import Page

STATIC_DIR = Path(__file__).with_name("static")
DEMO_PREFIX = "/__devstack/"
OPENAPI_PATH = ROOT / "openapi.yaml"
DOCS_ASSETS_PREFIX = "/docs/static/"
SESSION_LIFETIME = 60  # Clerk's session tokens live 60 s; the page refreshes them, as clerk-js does


def _json(payload: Any) -> Page:
    return Page(200, "application/json", json.dumps(payload).encode())


class DemoPages:
    def __init__(
        self, demo: DemoData, mint: Callable[[str, int], str], describe: Callable[[], dict[str, Any]]
    ) -> None:
        """`mint(user, lifetime)` signs a session token; `describe()` is the stack's description."""
        self._demo, self._mint, self._describe = demo, mint, describe

    def find(self, method: str, path: str, query: dict[str, list[str]]) -> Page | None:
        if path in ("/", "/index.html") and method in ("GET", "HEAD"):
            return Page(200, "text/html; charset=utf-8", (STATIC_DIR / "index.html").read_bytes())
        if not path.startswith(DEMO_PREFIX):
            return None
        name = (method, path.removeprefix(DEMO_PREFIX))
        if name == ("GET", "session"):
            token = self._mint(DEMO_USER, SESSION_LIFETIME)
            return _json(
                {
                    "token": token,
                    "expiresIn": SESSION_LIFETIME,
                    "userId": DEMO_USER,
                    "orgId": DEMO_ORG,
                    "projectId": DEMO_PROJECT,
                }
            )
        if name == ("GET", "messages"):
            project_id = (query.get("projectId") or [DEMO_PROJECT])[0]
            return _json({"projectId": project_id, "messages": self._demo.messages(project_id)})
        if name == ("POST", "reset"):
            return _json({"processing": self._demo.seed()})
        if name == ("GET", "info"):
            return _json(self._describe())
        return None


class ApiDocs:
    def __init__(self, document_path: Path = OPENAPI_PATH) -> None:
        self.document = json.dumps(yaml.safe_load(document_path.read_text())).encode()
        self.page = (STATIC_DIR / "docs.html").read_bytes()
        # Found, not imported: importing Powertools' event handler takes seconds.
        powertools = importlib.util.find_spec("aws_lambda_powertools")
        origin = powertools.origin if powertools else None
        assert origin is not None, "aws-lambda-powertools is a dependency of the service"
        assets_dir = Path(origin).parent / "event_handler" / "openapi" / "swagger_ui"
        self.assets = {path.name: path for path in assets_dir.glob("swagger-ui*") if path.is_file()}

    def find(self, method: str, path: str, query: dict[str, list[str]]) -> Page | None:  # noqa: ARG002 - the Pages protocol
        if method not in ("GET", "HEAD"):
            return None
        if path == "/openapi.json":
            return Page(200, "application/json", self.document)
        if path in ("/docs", "/docs/"):
            return Page(200, "text/html; charset=utf-8", self.page)
        # Only the package's own file names: no path from the request reaches the file system.
        name = path.removeprefix(DOCS_ASSETS_PREFIX)
        asset = self.assets.get(name) if name != path else None
        if asset is None:
            return None
        content_type = mimetypes.guess_type(asset.name)[0] or "application/octet-stream"
        return Page(200, content_type, asset.read_bytes())
