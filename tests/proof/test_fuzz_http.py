"""The HTTP function against generated API Gateway events: whatever arrives, never a 500."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cancel_service.handlers.cancel_http import handler
from devstack.apigw import http_api_event
from devstack.clerk import DEV_ORIGIN
from support.constants import CANCEL_PATH, PROJECT
from support.http_api import invoke
from support.store import Store

pytestmark = pytest.mark.proof


def test_base64_flagged_body_with_non_ascii_text_is_400_not_500(store: Store, mint, lambda_context):
    store.put_project()
    store.put_message("m1")
    event = http_api_event(
        "POST",
        CANCEL_PATH,
        headers={"content-type": "application/json", "authorization": f"Bearer {mint()}"},
        body='{"projectId":"é"}',
    )
    event["isBase64Encoded"] = True

    answer = invoke(event, lambda_context)

    assert answer.status == 400
    assert answer.body["error"]["code"] == "invalid_request"
    assert store.status("m1") == "processing"


def test_body_with_a_lone_surrogate_is_400_not_500(store: Store, mint, lambda_context):
    store.put_project()
    store.put_message("m1")
    body = '{"projectId":"' + PROJECT + '","note":"\ud800"}'
    event = http_api_event(
        "POST",
        CANCEL_PATH,
        headers={"content-type": "application/json", "authorization": f"Bearer {mint()}"},
        body=body,
    )

    answer = invoke(event, lambda_context)

    assert answer.status == 400
    assert answer.body["error"]["code"] == "invalid_request"
    assert store.status("m1") == "processing"


# --- the fuzz: generated API Gateway HTTP API v2 events against the real handler ------------------

# Statuses the contract allows (404 also answers an unknown route); anything else, 500 first, fails.
CONTRACT_STATUSES = frozenset({200, 400, 401, 403, 404, 413, 415, 503})
# Events go in batches: Hypothesis' cost per example is several times the handler's cost per event.
BATCH = 50
FUZZ_EVENTS = 10_000
OTHER_PROJECT = "k57someoneelse1"
FOREIGN_ORIGIN = "https://evil.example"
# Locally every run explores new events; on CI (where `CI` is set) the events are the same on
# every run. A failure is reproduced with `pytest tests/proof/test_fuzz_http.py --hypothesis-seed=N`
# (N from the failure report, or any number to explore another sequence).
settings.register_profile(
    "http-fuzz",
    max_examples=FUZZ_EVENTS // BATCH,
    derandomize="CI" in os.environ,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Any code point, lone surrogates included: the Lambda runtime hands over whatever the JSON held.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)


def often(usual: Any, other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly `usual`, sometimes `other`: most events get past this part to the deeper layers."""
    return st.one_of(st.just(usual), st.just(usual), st.just(usual), other)


def mutations(token: str) -> st.SearchStrategy[str]:
    """The genuine token, slightly changed: a character replaced, removed or inserted, a suffix."""
    position = st.integers(0, len(token) - 1)
    character = st.sampled_from("Aa0-_=.+/ é\ud800\0")
    return st.one_of(
        st.tuples(position, character).map(lambda pc: token[: pc[0]] + pc[1] + token[pc[0] + 1 :]),
        position.map(lambda p: token[:p] + token[p + 1 :]),
        st.tuples(position, character).map(lambda pc: token[: pc[0]] + pc[1] + token[pc[0] :]),
        st.sampled_from(["=", "==", "A", ".", ".AAAA", " x", "\ud800"]).map(lambda suffix: token + suffix),
        st.just(".".join(reversed(token.split(".")))),
    )


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(any_text, inner, max_size=3)),
    max_leaves=6,
)
PROJECT_IDS = often(
    PROJECT,
    st.one_of(st.sampled_from([OTHER_PROJECT, "k57missing00000", "", "a" * 129, "../x", "é"]), any_text),
)
CANCEL_BODIES = st.builds(
    lambda project_id, extra: json.dumps({"projectId": project_id, **extra}),
    PROJECT_IDS,
    st.sampled_from([{}, {"reason": "stop"}, {"projectid": "k57other"}, {"projectId ": None}]),
)
OTHER_BODIES = st.one_of(
    st.none(),
    CANCEL_BODIES.map(str.encode),  # arrives base64-encoded, as API Gateway sends binary bodies
    JSON_VALUES.map(json.dumps),
    any_text,
    st.binary(max_size=40),
    st.sampled_from(["[]", "null", "{", '{"projectId": 1}', '{"projectId": null}']),
    st.integers(16 * 1024 - 20, 16 * 1024).map(lambda n: '{"projectId":"' + "x" * n + '"}'),
    st.just(json.dumps({"projectId": PROJECT, "pad": "x" * 20_000})),
)
CONTENT_TYPES = often(
    "application/json",
    st.one_of(
        st.sampled_from(
            ["application/json; charset=utf-8", "APPLICATION/JSON", "text/plain", "application/jsonx"]
        ),
        any_text,
    ),
)
ODD_METHODS = st.one_of(st.sampled_from(["GET", "PUT", "DELETE", "OPTIONS", "HEAD", "post"]), any_text)
ODD_PATHS = st.one_of(
    st.sampled_from(["/", "/api/messages", CANCEL_PATH + "/", "/API/messages/cancel"]), any_text
)
SCHEMES = often("Bearer", st.sampled_from(["bearer", "BEARER", "Basic", "Token", "Bearer ", ""]))
COOKIE_NAMES = often("__session", st.sampled_from(["__Session", "__session_abcdefgh", "theme", "__client"]))
ORIGINS = st.one_of(st.none(), st.sampled_from([DEV_ORIGIN, FOREIGN_ORIGIN, "null"]), any_text)
EXTRA_HEADERS = st.dictionaries(
    st.sampled_from(["x-a", "accept", "host", "user-agent"]), any_text, max_size=2
)
OPTIONAL_CONTEXT = st.sets(
    st.sampled_from(
        ["requestId", "timeEpoch", "time", "domainName", "domainPrefix", "accountId", "apiId", "routeKey"]
    )
)
OPTIONAL_HTTP = st.sets(st.sampled_from(["sourceIp", "userAgent", "protocol", "path"]))
OPTIONAL_TOP = st.sets(
    st.sampled_from(
        ["headers", "body", "cookies", "isBase64Encoded", "rawQueryString", "routeKey", "version"]
    )
)


def events(genuine: str) -> st.SearchStrategy[dict[str, Any]]:
    """API Gateway HTTP API v2 events around the cancel route, with every part a client controls
    drawn at random (the strategies are built once: building them per draw is slow)."""
    presented_tokens = st.one_of(
        st.just(genuine), mutations(genuine), any_text, st.text("ABCab01-_.=", max_size=60)
    )
    authorizations = st.one_of(st.builds("{} {}".format, SCHEMES, presented_tokens), any_text)
    cookie_lists = st.lists(
        st.one_of(st.builds("{}={}".format, COOKIE_NAMES, presented_tokens), any_text), min_size=1, max_size=3
    )
    credentials = st.sampled_from(["none", "bearer", "cookie", "both"])

    @st.composite
    def shaped(draw: st.DrawFn) -> dict[str, Any]:
        headers: dict[str, str] = draw(EXTRA_HEADERS)
        if content_type := draw(CONTENT_TYPES):
            headers["content-type"] = content_type
        presented = draw(credentials)
        if presented in ("bearer", "both"):
            headers["authorization"] = draw(authorizations)
        if origin := draw(ORIGINS):
            headers["origin"] = origin
        body = draw(CANCEL_BODIES if draw(st.integers(0, 3)) else OTHER_BODIES)
        # One event in 8 misses the route: the rest go on to the body and the token.
        method, path = (
            ("POST", CANCEL_PATH) if draw(st.integers(0, 7)) else (draw(ODD_METHODS), draw(ODD_PATHS))
        )
        event = http_api_event(method, path, headers=headers, body=body)
        if presented in ("cookie", "both"):
            event["cookies"] = draw(cookie_lists)
        if draw(st.integers(0, 4)) == 0:
            # The flag disagrees with the body: text flagged as base64, or base64 left unflagged.
            event["isBase64Encoded"] = not event["isBase64Encoded"]
        return event

    @st.composite
    def with_parts_missing(draw: st.DrawFn) -> dict[str, Any]:
        return without_optional_parts(draw, draw(shaped()))

    return st.one_of(shaped(), with_parts_missing())


def without_optional_parts(draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
    """What API Gateway could hand over with optional parts missing or odd (no headers, no
    request id, header names in capitals); the parts it always sends (method, rawPath, stage)
    stay."""
    for name in draw(OPTIONAL_CONTEXT):
        del event["requestContext"][name]
    for name in draw(OPTIONAL_HTTP):
        del event["requestContext"]["http"][name]
    for name in draw(OPTIONAL_TOP):
        event.pop(name, None)
    if draw(st.booleans()) and "headers" in event:
        event["headers"] = {name.upper(): value for name, value in event["headers"].items()}
    if draw(st.booleans()):
        event["cookies"] = draw(st.one_of(st.none(), st.lists(any_text, max_size=3)))
    return event


def check_response(response: dict[str, Any], secrets: list[str]) -> int:
    status = response["statusCode"]
    assert status in CONTRACT_STATUSES, status
    assert response["headers"]["Content-Type"] == "application/json"
    assert response["headers"]["Cache-Control"] == "no-store"
    body = json.loads(response["body"])
    assert body["success"] is (status == 200)
    if status != 200:
        assert set(body["error"]) == {"code", "message"}
    assert not any(secret in response["body"] for secret in secrets)
    if status == 503:
        assert response["headers"]["Retry-After"]
    return status


def test_no_generated_event_gets_a_500(store: Store, mint, lambda_context, capsys):
    store.put_project()
    store.put_project(OTHER_PROJECT, owner_id="user_2stranger")
    for number in range(3):
        store.put_message(
            f"m{number}", execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:agent:m{number}"
        )
    genuine = mint(exp=int(time.time()) + 600)
    # Token text that must never come back: each segment of the genuine token.
    secrets = genuine.split(".")
    histogram: Counter[int] = Counter()
    started = time.monotonic()

    @settings(settings.get_profile("http-fuzz"))
    @given(batch=st.lists(events(genuine), min_size=BATCH, max_size=BATCH))
    def send(batch: list[dict[str, Any]]) -> None:
        for event in batch:
            histogram[check_response(handler(event, lambda_context), secrets)] += 1

    send()
    seconds = time.monotonic() - started

    with capsys.disabled():
        print(
            f"\nHTTP fuzz: {sum(histogram.values())} events in {seconds:.1f} s,"
            f" statuses {dict(sorted(histogram.items()))}"
        )
    assert sum(histogram.values()) >= FUZZ_EVENTS
    # The events reach every layer: the route, the body, the token, the origin and the project.
    assert {200, 400, 401, 403, 404, 413, 415} <= histogram.keys()
