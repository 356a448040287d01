"""Valid tokens are accepted from each source the contract names (bearer header, session cookie,
suffixed cookie, static key), a cookie only from the app's own origin; no token reaches a log line,
and refusals are counted and logged without noise."""

from __future__ import annotations

import base64
import json
import time

import pytest

from cancel_service.adapters.clerk import cookie_suffix
from devstack.clerk import DEV_ORIGIN, SigningKey
from support.constants import OWNER, PROJECT
from support.http_api import post_cancel
from support.token_scene import assert_refused


@pytest.mark.usefixtures("token_scene")
def test_expiry_and_not_before_allow_five_seconds_of_clock_skew(mint, lambda_context):
    now = int(time.time())

    assert post_cancel(lambda_context, {"projectId": PROJECT}, token=mint(exp=now - 2)).status == 200
    assert post_cancel(lambda_context, {"projectId": PROJECT}, token=mint(nbf=now + 2)).status == 200


@pytest.mark.usefixtures("token_scene")
def test_typ_jwt_and_active_session_status_are_accepted(mint, lambda_context):
    answer = post_cancel(
        lambda_context, {"projectId": PROJECT}, token=mint(headers={"typ": "JWT"}, sts="active")
    )
    assert answer.status == 200


@pytest.mark.usefixtures("token_scene")
def test_same_origin_cookie_is_accepted(mint, lambda_context):
    answer = post_cancel(
        lambda_context,
        {"projectId": PROJECT},
        cookie=f"theme=dark; __session={mint()}",
        headers={"origin": DEV_ORIGIN},
    )
    assert answer.status == 200
    assert answer.body["messageIds"] == ["m1"]


@pytest.mark.usefixtures("token_scene")
def test_cookie_without_origin_header_is_accepted(mint, lambda_context):
    answer = post_cancel(lambda_context, {"projectId": PROJECT}, cookie=f"__session={mint()}")
    assert answer.status == 200


def test_cookie_from_another_site_is_403_and_changes_nothing(token_scene, mint, lambda_context):
    answer = post_cancel(
        lambda_context,
        {"projectId": PROJECT},
        cookie=f"__session={mint()}",
        headers={"origin": "https://evil.example"},
    )

    assert answer.status == 403
    assert answer.body["error"]["code"] == "forbidden"
    assert token_scene.status("m1") == "processing"
    assert token_scene.published() == []


@pytest.mark.usefixtures("token_scene")
def test_bearer_token_is_not_subject_to_the_cookie_origin_rule(mint, lambda_context):
    answer = post_cancel(
        lambda_context, {"projectId": PROJECT}, token=mint(), headers={"origin": "https://other.example"}
    )
    assert answer.status == 200


def test_bearer_header_wins_over_cookie(token_scene, mint, lambda_context):
    answer = post_cancel(
        lambda_context, {"projectId": PROJECT}, token="garbage", cookie=f"__session={mint()}"
    )
    assert_refused(answer, token_scene)


@pytest.mark.usefixtures("token_scene")
def test_suffixed_cookie_is_read_before_the_plain_one(mint, lambda_context, monkeypatch):
    publishable_key = "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k"
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", publishable_key)
    suffixed = f"__session_{cookie_suffix(publishable_key)}"

    good_suffixed = post_cancel(
        lambda_context, {"projectId": PROJECT}, cookie=f"__session=garbage; {suffixed}={mint()}"
    )
    assert good_suffixed.status == 200

    bad_suffixed = post_cancel(
        lambda_context, {"projectId": PROJECT}, cookie=f"__session={mint()}; {suffixed}=garbage"
    )
    assert bad_suffixed.status == 401


def test_cookie_suffix_matches_clerks_algorithm():
    # base64url(SHA-1("pk_test_Y2xlcmsuZXhhbXBsZS5jb20k")) without padding, first 8 characters.
    import hashlib

    digest = hashlib.sha1(b"pk_test_Y2xlcmsuZXhhbXBsZS5jb20k", usedforsecurity=False).digest()
    expected = base64.b64encode(digest).decode().replace("+", "-").replace("/", "_")[:8]
    assert cookie_suffix("pk_test_Y2xlcmsuZXhhbXBsZS5jb20k") == expected
    assert len(expected) == 8


@pytest.mark.usefixtures("token_scene")
def test_azp_is_not_checked_when_no_authorized_parties_are_configured(mint, lambda_context, monkeypatch):
    monkeypatch.setenv("CLERK_AUTHORIZED_PARTIES", "")
    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint(azp=None))
    assert answer.status == 200


@pytest.mark.usefixtures("token_scene")
def test_static_jwt_key_verifies_without_fetching_the_jwks(
    mint, signing_key, jwks, lambda_context, monkeypatch
):
    monkeypatch.setenv("CLERK_JWT_KEY", signing_key.public_pem().replace("\n", "\\n"))
    jwks.available = False

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())
    forged = post_cancel(
        lambda_context, {"projectId": PROJECT}, token=mint(key=SigningKey.generate(signing_key.kid))
    )

    assert answer.status == 200
    assert forged.status == 401
    assert jwks.fetches == 0


@pytest.mark.usefixtures("token_scene")
def test_no_token_reaches_a_log_line_or_a_response(mint, lambda_context, log_lines, capfd):
    tokens = [
        mint(),
        mint(exp=int(time.time()) - 60),
        mint(headers={"kid": "ins_unknown"}),
        mint(azp="https://x.example"),
    ]
    answers = [post_cancel(lambda_context, {"projectId": PROJECT}, token=token) for token in tokens]
    answers.append(
        post_cancel(
            lambda_context,
            {"projectId": PROJECT},
            cookie=f"__session={tokens[0]}",
            headers={"origin": "https://evil.example"},
        )
    )

    logs = json.dumps(log_lines()) + capfd.readouterr().out
    assert '"cancel handled"' in logs  # the logs were really captured
    assert '"unknown_kid"' in logs
    for token in tokens:
        for part in token.split("."):
            assert part not in logs
            for answer in answers:
                assert part not in json.dumps(answer.body) + json.dumps(answer.headers)


@pytest.mark.usefixtures("token_scene")
def test_auth_failures_are_counted_by_reason(mint, lambda_context, capfd):
    post_cancel(lambda_context, {"projectId": PROJECT}, token=mint(exp=int(time.time()) - 60))

    metrics = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"_aws"' in line]
    failures = [m for m in metrics if "AuthFailures" in m]
    assert len(failures) == 1
    assert failures[0]["reason"] == "expired"
    assert failures[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "StopTheAI"


@pytest.mark.usefixtures("token_scene")
def test_successful_cancel_is_logged_with_the_callers_user_id(mint, lambda_context, log_lines):
    post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    handled = next(log for log in log_lines() if log["message"] == "cancel handled")
    assert handled["user_id"] == OWNER
    assert handled["correlation_id"]
    assert handled["level"] == "INFO"


@pytest.mark.usefixtures("token_scene")
def test_client_errors_are_logged_at_info_without_stack_trace(mint, lambda_context, log_lines):
    post_cancel(lambda_context, {"projectId": "k57missing"}, token=mint())

    refused = [log for log in log_lines() if log["message"].startswith("request refused")]
    assert refused
    assert refused[0]["level"] == "INFO"
    assert "exception" not in refused[0]
