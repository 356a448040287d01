"""openapi.yaml: a valid OpenAPI 3.1 document, and the handler answers as it says.

One request per documented status goes through the handler in-process; each answer (status,
headers, body) is validated against the document's response for that status, and a status the
document does not list fails the test."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from schemathesis.specs.openapi.definitions import OPENAPI_31

from devstack.clerk import JwksServer
from support.constants import CANCEL_PATH, PROJECT, ROOT
from support.http_api import Answer, post_cancel
from support.store import Store

DOCUMENT: dict[str, Any] = yaml.safe_load((ROOT / "openapi.yaml").read_text())
DOCUMENT_URI = "urn:cancel-service:openapi"
OPERATION_POINTER = "/paths/" + CANCEL_PATH.replace("~", "~0").replace("/", "~1") + "/post"
RESPONSES: dict[str, Any] = DOCUMENT["paths"][CANCEL_PATH]["post"]["responses"]
REGISTRY: Registry = Registry().with_resource(DOCUMENT_URI, DRAFT202012.create_resource(DOCUMENT))


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """A `$ref` to somewhere in this document, followed (headers are referenced by pointer)."""
    while "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _schema_validator(pointer: str) -> Draft202012Validator:
    """A validator for the schema at `pointer` whose `#/components/...` references resolve in
    this document."""
    return Draft202012Validator({"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=REGISTRY)


def assert_documented(answer: Answer) -> None:
    """The answer is one the document describes: its status, its headers, its body."""
    status = str(answer.status)
    assert status in RESPONSES, f"status {status} is not documented: {answer.body}"
    response = RESPONSES[status]
    headers = {name.lower(): value for name, value in answer.headers.items()}
    media_type = headers.get("content-type", "").split(";", 1)[0].strip()
    assert media_type in response["content"], f"{status}: undocumented Content-Type {media_type!r}"
    for name, reference in response.get("headers", {}).items():
        header = _resolve(reference)
        if header.get("required"):
            assert name.lower() in headers, f"{status}: header {name} is missing"
        if name.lower() in headers:
            Draft202012Validator(header["schema"]).validate(headers[name.lower()])
    pointer = f"{OPERATION_POINTER}/responses/{status}/content/{media_type.replace('/', '~1')}/schema"
    _schema_validator(pointer).validate(answer.body)


# --- the document itself ---------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1():
    # The OpenAPI 3.1 meta-schema as schemathesis ships it: openapi-spec-validator is not among
    # schemathesis' dependencies, so jsonschema checks the document against this.
    Draft202012Validator(OPENAPI_31).validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1.")
    for schema in DOCUMENT["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_every_reference_resolves():
    references: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            references.extend([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(DOCUMENT)
    assert references
    for reference in references:
        assert _resolve({"$ref": reference})


def _body_schema(status: str) -> Draft202012Validator:
    return _schema_validator(f"{OPERATION_POINTER}/responses/{status}/content/application~1json/schema")


@pytest.mark.parametrize(
    "body",
    [
        {"success": True, "cancelled": True},
        {"success": True, "cancelled": True, "messageIds": []},
        {"success": True, "cancelled": False, "messageIds": ["k58xyz789ghi012"]},
        {"success": False, "cancelled": True, "messageIds": ["k58xyz789ghi012"]},
        {"success": True, "cancelled": True, "messageIds": ["k58xyz789ghi012"], "error": {}},
    ],
)
def test_a_success_body_that_mixes_shapes_is_refused(body):
    with pytest.raises(ValidationError):
        _body_schema("200").validate(body)


def test_an_error_code_belongs_to_its_status():
    not_found = {"success": False, "error": {"code": "project_not_found", "message": "No such project."}}
    _body_schema("404").validate(not_found)
    with pytest.raises(ValidationError):
        _body_schema("400").validate(not_found)
    with pytest.raises(ValidationError):
        _body_schema("404").validate({**not_found, "success": True})


def test_project_id_pattern_is_the_contract():
    request = _schema_validator(f"{OPERATION_POINTER}/requestBody/content/application~1json/schema")
    request.validate({"projectId": "a" * 128, "unknown": [1, 2]})
    for project_id in ("", "a" * 129, "k57 abc", "k57/abc", "é"):
        with pytest.raises(ValidationError):
            request.validate({"projectId": project_id})


# --- the handler answers as documented ------------------------------------------------------------


@dataclass
class Scene:
    """The handler's surroundings in one test, which a scenario may change before it calls."""

    store: Store
    mint: Callable[..., str]
    context: Any
    monkeypatch: pytest.MonkeyPatch
    jwks: JwksServer

    def cancel(self, body: Any = None, **kwargs: Any) -> Answer:
        return post_cancel(self.context, body if body is not None else {"projectId": PROJECT}, **kwargs)


@pytest.fixture
def scene(store, mint, lambda_context, monkeypatch, jwks) -> Scene:
    return Scene(store, mint, lambda_context, monkeypatch, jwks)


def _cancelled(scene: Scene) -> Answer:
    scene.store.put_project()
    scene.store.put_message("k58xyz789ghi012")
    return scene.cancel(token=scene.mint())


def _nothing_to_cancel(scene: Scene) -> Answer:
    scene.store.put_project()
    scene.store.put_message("k61done00000001", status="completed")
    return scene.cancel(token=scene.mint())


def _foreign_origin(scene: Scene) -> Answer:
    return scene.cancel(cookie=f"__session={scene.mint()}", headers={"origin": "https://evil.example"})


def _misconfigured(scene: Scene) -> Answer:
    scene.monkeypatch.delenv("MESSAGES_TABLE")
    return scene.cancel(token=scene.mint())


def _jwks_down(scene: Scene) -> Answer:
    scene.jwks.available = False
    return scene.cancel(token=scene.mint())


SCENARIOS: dict[str, tuple[int, Callable[[Scene], Answer]]] = {
    "cancelled": (200, _cancelled),
    "nothing to cancel": (200, _nothing_to_cancel),
    "malformed projectId": (400, lambda scene: scene.cancel({"projectId": "a b"}, token=scene.mint())),
    "no token": (401, lambda scene: scene.cancel()),
    "token with a character appended": (401, lambda scene: scene.cancel(token=scene.mint() + "=")),
    "cookie from a foreign origin": (403, _foreign_origin),
    "unknown project": (404, lambda scene: scene.cancel({"projectId": "k99nosuch"}, token=scene.mint())),
    "body over 16 KiB": (
        413,
        lambda scene: scene.cancel({"projectId": PROJECT, "pad": "x" * 16 * 1024}, token=scene.mint()),
    ),
    "text/plain body": (
        415,
        lambda scene: scene.cancel(
            raw_body="projectId=k57", token=scene.mint(), headers={"content-type": "text/plain"}
        ),
    ),
    "missing configuration (the catch-all)": (500, _misconfigured),
    "JWKS down on a cold start": (503, _jwks_down),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_handler_answer_matches_the_document(name, scene):
    expected_status, call = SCENARIOS[name]

    answer = call(scene)

    assert answer.status == expected_status, json.dumps(answer.body)
    assert_documented(answer)


# Answered by API Gateway's route throttle, before the handler: the local stack's test of the
# throttle (tests/local/test_local_load.py) checks that answer against this document.
GATEWAY_STATUSES = {"429"}


def test_every_documented_status_is_exercised():
    assert {str(status) for status, _ in SCENARIOS.values()} == set(RESPONSES) - GATEWAY_STATUSES


def test_both_challenges_of_the_document_are_given(scene):
    challenges = {
        SCENARIOS["no token"][1](scene).headers["WWW-Authenticate"],
        SCENARIOS["token with a character appended"][1](scene).headers["WWW-Authenticate"],
    }

    assert challenges == set(_resolve(RESPONSES["401"]["headers"]["WWW-Authenticate"])["schema"]["enum"])
