"""Every token the contract refuses is refused (401, nothing changed); valid sources are accepted."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from cancel_service.adapters.clerk import SessionTokenVerifier, StaticKey, cookie_suffix
from cancel_service.errors import AuthenticationFailed
from devstack.apigw import http_api_event
from devstack.clerk import DEV_ISSUER, DEV_ORIGIN, SigningKey
from support.constants import OWNER, PROJECT
from support.http_api import invoke, post_cancel
from support.store import Store


@pytest.fixture
def scene(store: Store) -> Store:
    store.put_project()
    store.put_message("m1", execution_arn="arn:aws:states:us-east-1:123456789012:execution:agent:x")
    return store


def assert_refused(answer, scene: Store, *, token_sent: bool = True) -> None:
    assert answer.status == 401
    assert answer.body == {
        "success": False,
        "error": {"code": "unauthenticated", "message": "A valid session token is required."},
    }
    expected = 'Bearer error="invalid_token"' if token_sent else "Bearer"
    assert answer.headers["WWW-Authenticate"] == expected
    assert scene.status("m1") == "processing"
    assert scene.published() == []


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_no_token_at_all_is_401_without_error_parameter(scene, lambda_context):
    answer = post_cancel(lambda_context, {"projectId": PROJECT})
    assert_refused(answer, scene, token_sent=False)


def test_valid_token_is_accepted(scene, mint, lambda_context):
    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())
    assert answer.status == 200


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda mint, key: "", id="empty-bearer"),
        pytest.param(lambda mint, key: "not-a-jwt", id="garbage"),
        pytest.param(lambda mint, key: "a.b.c", id="three-garbage-parts"),
        pytest.param(lambda mint, key: mint().rsplit(".", 1)[0] + ".", id="signature-stripped"),
        pytest.param(
            lambda mint, key: (
                _b64({"alg": "none", "typ": "JWT", "kid": key.kid}) + "." + mint().split(".")[1] + "."
            ),
            id="alg-none",
        ),
        pytest.param(
            lambda mint, key: jwt.encode(
                jwt.decode(mint(), options={"verify_signature": False}),
                "secret-that-is-long-enough-for-hs256-xx",
                algorithm="HS256",
                headers={"kid": key.kid},
            ),
            id="alg-hs256",
        ),
        pytest.param(
            lambda mint, key: key.sign(
                jwt.decode(mint(), options={"verify_signature": False}), algorithm="RS512"
            ),
            id="alg-rs512-right-key",
        ),
        pytest.param(lambda mint, key: mint(headers={"kid": None}), id="kid-missing"),
        pytest.param(lambda mint, key: mint(headers={"kid": "ins_unknown"}), id="kid-unknown"),
        pytest.param(lambda mint, key: mint(headers={"jku": "https://evil.example/jwks.json"}), id="jku"),
        pytest.param(lambda mint, key: mint(headers={"x5u": "https://evil.example/cert.pem"}), id="x5u"),
        pytest.param(lambda mint, key: mint(headers={"jwk": key.public_jwk()}), id="embedded-jwk"),
        pytest.param(lambda mint, key: mint(headers={"x5c": ["MIIB"]}), id="x5c"),
        pytest.param(lambda mint, key: mint(headers={"crit": ["exp"]}), id="crit"),
        pytest.param(lambda mint, key: mint(headers={"typ": "at+jwt"}), id="typ-not-jwt"),
        pytest.param(lambda mint, key: mint(padding="x" * 8 * 1024), id="over-8-kib"),
        pytest.param(lambda mint, key: mint(key=SigningKey.generate(key.kid)), id="forged-with-same-kid"),
        pytest.param(
            lambda mint, key: ".".join(
                [
                    mint().split(".")[0],
                    _b64({**jwt.decode(mint(), options={"verify_signature": False}), "sub": "user_x"}),
                    mint().split(".")[2],
                ]
            ),
            id="payload-tampered",
        ),
        pytest.param(lambda mint, key: mint(exp=int(time.time()) - 60), id="expired"),
        pytest.param(lambda mint, key: mint(nbf=int(time.time()) + 60), id="not-yet-valid"),
        pytest.param(lambda mint, key: mint(exp=None), id="no-exp"),
        pytest.param(lambda mint, key: mint(iat=None), id="no-iat"),
        pytest.param(lambda mint, key: mint(nbf=None), id="no-nbf"),
        pytest.param(lambda mint, key: mint(iss="https://evil.example"), id="wrong-issuer"),
        pytest.param(lambda mint, key: mint(iss=None), id="no-issuer"),
        pytest.param(
            lambda mint, key: mint(iss="https://clerk.cancel-service.localhost/"), id="issuer-trailing-slash"
        ),
        pytest.param(lambda mint, key: mint(azp="https://evil.example"), id="foreign-azp"),
        pytest.param(lambda mint, key: mint(azp=None), id="no-azp"),
        pytest.param(lambda mint, key: mint("org_2notauser"), id="sub-not-a-user"),
        pytest.param(lambda mint, key: mint(sid=None), id="jwt-template-token-without-sid"),
        pytest.param(lambda mint, key: mint(sid="notasession"), id="sid-not-a-session"),
        pytest.param(lambda mint, key: mint(sts="pending"), id="pending-session"),
    ],
)
def test_attack_is_refused_with_nothing_changed(scene, mint, signing_key, lambda_context, forge):
    token = forge(mint, signing_key)

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=token)

    assert_refused(answer, scene)


def test_expiry_and_not_before_allow_five_seconds_of_clock_skew(scene, mint, lambda_context):
    now = int(time.time())

    assert post_cancel(lambda_context, {"projectId": PROJECT}, token=mint(exp=now - 2)).status == 200
    assert post_cancel(lambda_context, {"projectId": PROJECT}, token=mint(nbf=now + 2)).status == 200


def test_typ_jwt_and_active_session_status_are_accepted(scene, mint, lambda_context):
    answer = post_cancel(
        lambda_context, {"projectId": PROJECT}, token=mint(headers={"typ": "JWT"}, sts="active")
    )
    assert answer.status == 200


def test_same_origin_cookie_is_accepted(scene, mint, lambda_context):
    answer = post_cancel(
        lambda_context,
        {"projectId": PROJECT},
        cookie=f"theme=dark; __session={mint()}",
        headers={"origin": DEV_ORIGIN},
    )
    assert answer.status == 200
    assert answer.body["messageIds"] == ["m1"]


def test_cookie_without_origin_header_is_accepted(scene, mint, lambda_context):
    answer = post_cancel(lambda_context, {"projectId": PROJECT}, cookie=f"__session={mint()}")
    assert answer.status == 200


def test_cookie_from_another_site_is_403_and_changes_nothing(scene, mint, lambda_context):
    answer = post_cancel(
        lambda_context,
        {"projectId": PROJECT},
        cookie=f"__session={mint()}",
        headers={"origin": "https://evil.example"},
    )

    assert answer.status == 403
    assert answer.body["error"]["code"] == "forbidden"
    assert scene.status("m1") == "processing"
    assert scene.published() == []


def test_bearer_token_is_not_subject_to_the_cookie_origin_rule(scene, mint, lambda_context):
    answer = post_cancel(
        lambda_context, {"projectId": PROJECT}, token=mint(), headers={"origin": "https://other.example"}
    )
    assert answer.status == 200


def test_bearer_header_wins_over_cookie(scene, mint, lambda_context):
    answer = post_cancel(
        lambda_context, {"projectId": PROJECT}, token="garbage", cookie=f"__session={mint()}"
    )
    assert_refused(answer, scene)


def test_suffixed_cookie_is_read_before_the_plain_one(scene, mint, lambda_context, monkeypatch):
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


def test_azp_is_not_checked_when_no_authorized_parties_are_configured(
    scene, mint, lambda_context, monkeypatch
):
    monkeypatch.setenv("CLERK_AUTHORIZED_PARTIES", "")
    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint(azp=None))
    assert answer.status == 200


def test_static_jwt_key_verifies_without_fetching_the_jwks(
    scene, mint, signing_key, jwks, lambda_context, monkeypatch
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


def test_no_token_reaches_a_log_line_or_a_response(scene, mint, lambda_context, log_lines, capfd):
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


def test_auth_failures_are_counted_by_reason(scene, mint, lambda_context, capfd):
    post_cancel(lambda_context, {"projectId": PROJECT}, token=mint(exp=int(time.time()) - 60))

    metrics = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"_aws"' in line]
    failures = [m for m in metrics if "AuthFailures" in m]
    assert len(failures) == 1
    assert failures[0]["reason"] == "expired"
    assert failures[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "StopTheAI"


def test_successful_cancel_is_logged_with_the_callers_user_id(scene, mint, lambda_context, log_lines):
    post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    handled = next(log for log in log_lines() if log["message"] == "cancel handled")
    assert handled["user_id"] == OWNER
    assert handled["correlation_id"]
    assert handled["level"] == "INFO"


def test_client_errors_are_logged_at_info_without_stack_trace(scene, mint, lambda_context, log_lines):
    post_cancel(lambda_context, {"projectId": "k57missing"}, token=mint())

    refused = [log for log in log_lines() if log["message"].startswith("request refused")]
    assert refused
    assert refused[0]["level"] == "INFO"
    assert "exception" not in refused[0]


# --- the token's form: only ASCII, canonical base64url, before any key is looked up -------------


def test_lone_surrogate_in_bearer_token_is_401_not_500(scene, lambda_context):
    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token="\ud800abc")

    assert_refused(answer, scene)


def test_lone_surrogate_in_session_cookie_is_401_not_500(scene, lambda_context):
    event = http_api_event(
        "POST", "/api/messages/cancel", headers={"content-type": "application/json"}, body='{"projectId":"x"}'
    )
    event["cookies"] = ["__session=\ud800abc"]

    assert_refused(invoke(event, lambda_context), scene)


def _with_segment(token: str, index: int, change) -> str:
    segments = token.split(".")
    segments[index] = change(segments[index])
    return ".".join(segments)


def _with_last_character_bits_set(segment: str) -> str:
    """The same bytes, spelt with the unused low bits of the last character set (non-canonical)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused_bits = {2: 4, 3: 2}[len(segment) % 4]
    last = alphabet.index(segment[-1]) | ((1 << unused_bits) - 1)
    return segment[:-1] + alphabet[last]


@pytest.mark.parametrize("segment", [0, 1, 2], ids=["header", "payload", "signature"])
@pytest.mark.parametrize(
    ("change", "length_remainder"),
    [
        # Padding that completes the segment to a multiple of 4 characters: a lenient decoder
        # reads the very same bytes, so only the form check can tell the tokens apart.
        pytest.param(lambda s: s + "==", {2}, id="double-padding-appended"),
        pytest.param(lambda s: s + "=", {2, 3}, id="padding-appended"),
        pytest.param(lambda s: s + "A", {1, 2, 3}, id="character-appended"),
        pytest.param(lambda s: s + "AA", {1, 2, 3}, id="two-characters-appended"),
        pytest.param(_with_last_character_bits_set, {2, 3}, id="unused-trailing-bits-set"),
    ],
)
def test_malleated_token_segment_is_refused(scene, mint, lambda_context, segment, change, length_remainder):
    # Extra claims and header fields of 0..3 characters give each segment every length modulo 4.
    token = next(
        candidate
        for candidate in (
            mint(pad="x" * claim_extra, headers={"pad": "y" * header_extra})
            for claim_extra in range(4)
            for header_extra in range(4)
        )
        if len(candidate.split(".")[segment]) % 4 in length_remainder
    )
    malleated = _with_segment(token, segment, change)
    assert malleated != token

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=malleated)

    assert_refused(answer, scene)


def test_genuine_token_segments_are_canonical_and_accepted(scene, mint, lambda_context):
    token = mint()
    for part in token.split("."):
        assert base64.urlsafe_b64encode(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))).decode() == (
            part + "=" * (-len(part) % 4)
        )
    assert post_cancel(lambda_context, {"projectId": PROJECT}, token=token).status == 200


# --- the time claims: JSON numbers, nothing else ---------------------------------------------------


def _sign_payload_text(key: SigningKey, payload: str) -> str:
    """A token whose payload is exactly `payload` (JSON that json.dumps would never write)."""
    return jwt.api_jws.encode(payload.encode(), key.private_key, algorithm="RS256", headers={"kid": key.kid})


def _payload_text(claims: dict, **raw: str) -> str:
    """`claims` as JSON, with the named claims replaced by raw JSON text."""
    fields = [f"{json.dumps(name)}:{json.dumps(value)}" for name, value in claims.items() if name not in raw]
    fields += [f"{json.dumps(name)}:{text}" for name, text in raw.items()]
    return "{" + ",".join(fields) + "}"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(lambda t: json.dumps(str(t)), id="numeric-string"),
        pytest.param(lambda t: json.dumps(f"{t}.0"), id="decimal-string"),
        pytest.param(lambda t: "true", id="true"),
        pytest.param(lambda t: "false", id="false"),
        pytest.param(lambda t: "null", id="null"),
        pytest.param(lambda t: "[" + str(t) + "]", id="array"),
        pytest.param(lambda t: '{"v":' + str(t) + "}", id="object"),
    ],
)
def test_time_claim_that_is_not_a_json_number_is_refused(
    scene, mint, signing_key, lambda_context, claim, spelling
):
    claims = jwt.decode(mint(), options={"verify_signature": False})
    token = _sign_payload_text(signing_key, _payload_text(claims, **{claim: spelling(claims[claim])}))

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=token)

    assert_refused(answer, scene)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("1e400", id="overflows-to-infinity"),
        pytest.param("-1e400", id="overflows-to-minus-infinity"),
        pytest.param("Infinity", id="infinity"),
        pytest.param("-Infinity", id="minus-infinity"),
        pytest.param("NaN", id="nan"),
        pytest.param("9" * 5000, id="over-the-integer-digit-limit"),
    ],
)
def test_time_claim_that_is_not_a_finite_number_is_refused_by_the_verifier(signing_key, mint, claim, text):
    claims = jwt.decode(mint(), options={"verify_signature": False})
    token = _sign_payload_text(signing_key, _payload_text(claims, **{claim: text}))
    verifier = SessionTokenVerifier(DEV_ISSUER, frozenset({DEV_ORIGIN}), StaticKey(signing_key.public_pem()))

    with pytest.raises(AuthenticationFailed):
        verifier.verify(token)


@pytest.mark.parametrize(
    ("claim", "text", "accepted"),
    [
        ("exp", "9" * 400, True),
        ("exp", "-" + "9" * 400, False),
        ("iat", "9" * 400, False),
        ("iat", "-" + "9" * 400, True),
        ("nbf", "9" * 400, False),
        ("nbf", "-" + "9" * 400, True),
    ],
    ids=[
        "exp-far-future",
        "exp-far-past",
        "iat-far-future",
        "iat-far-past",
        "nbf-far-future",
        "nbf-far-past",
    ],
)
def test_huge_integer_time_claims_are_compared_as_numbers(signing_key, mint, claim, text, accepted):
    claims = jwt.decode(mint(), options={"verify_signature": False})
    token = _sign_payload_text(signing_key, _payload_text(claims, **{claim: text}))
    verifier = SessionTokenVerifier(DEV_ISSUER, frozenset({DEV_ORIGIN}), StaticKey(signing_key.public_pem()))

    if accepted:
        assert verifier.verify(token).user_id == OWNER
    else:
        with pytest.raises(AuthenticationFailed):
            verifier.verify(token)


def test_time_claims_as_integers_and_finite_floats_are_accepted(signing_key, mint):
    now = time.time()
    verifier = SessionTokenVerifier(DEV_ISSUER, frozenset({DEV_ORIGIN}), StaticKey(signing_key.public_pem()))

    assert verifier.verify(mint(exp=now + 30.5, iat=now - 1.25, nbf=int(now) - 10)).user_id == OWNER
