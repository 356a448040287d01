"""Every token the contract refuses is refused (401, nothing changed): forged, expired, for another
party or issuer, malformed, or in a form that is not the canonical one."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from devstack.apigw import http_api_event
from devstack.clerk import SigningKey
from support.constants import PROJECT
from support.http_api import invoke, post_cancel
from support.token_scene import assert_refused


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_no_token_at_all_is_401_without_error_parameter(token_scene, lambda_context):
    answer = post_cancel(lambda_context, {"projectId": PROJECT})
    assert_refused(answer, token_scene, token_sent=False)


@pytest.mark.usefixtures("token_scene")
def test_valid_token_is_accepted(mint, lambda_context):
    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())
    assert answer.status == 200


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda _mint, _key: "", id="empty-bearer"),
        pytest.param(lambda _mint, _key: "not-a-jwt", id="garbage"),
        pytest.param(lambda _mint, _key: "a.b.c", id="three-garbage-parts"),
        pytest.param(lambda mint, _key: mint().rsplit(".", 1)[0] + ".", id="signature-stripped"),
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
        pytest.param(lambda mint, _key: mint(headers={"kid": None}), id="kid-missing"),
        pytest.param(lambda mint, _key: mint(headers={"kid": "ins_unknown"}), id="kid-unknown"),
        pytest.param(lambda mint, _key: mint(headers={"jku": "https://evil.example/jwks.json"}), id="jku"),
        pytest.param(lambda mint, _key: mint(headers={"x5u": "https://evil.example/cert.pem"}), id="x5u"),
        pytest.param(lambda mint, key: mint(headers={"jwk": key.public_jwk()}), id="embedded-jwk"),
        pytest.param(lambda mint, _key: mint(headers={"x5c": ["MIIB"]}), id="x5c"),
        pytest.param(lambda mint, _key: mint(headers={"crit": ["exp"]}), id="crit"),
        pytest.param(lambda mint, _key: mint(headers={"typ": "at+jwt"}), id="typ-not-jwt"),
        pytest.param(lambda mint, _key: mint(padding="x" * 8 * 1024), id="over-8-kib"),
        pytest.param(lambda mint, key: mint(key=SigningKey.generate(key.kid)), id="forged-with-same-kid"),
        pytest.param(
            lambda mint, _key: ".".join(
                [
                    mint().split(".")[0],
                    _b64({**jwt.decode(mint(), options={"verify_signature": False}), "sub": "user_x"}),
                    mint().split(".")[2],
                ]
            ),
            id="payload-tampered",
        ),
        pytest.param(lambda mint, _key: mint(exp=int(time.time()) - 60), id="expired"),
        pytest.param(lambda mint, _key: mint(nbf=int(time.time()) + 60), id="not-yet-valid"),
        pytest.param(lambda mint, _key: mint(exp=None), id="no-exp"),
        pytest.param(lambda mint, _key: mint(iat=None), id="no-iat"),
        pytest.param(lambda mint, _key: mint(nbf=None), id="no-nbf"),
        pytest.param(lambda mint, _key: mint(iss="https://evil.example"), id="wrong-issuer"),
        pytest.param(lambda mint, _key: mint(iss=None), id="no-issuer"),
        pytest.param(
            lambda mint, _key: mint(iss="https://clerk.cancel-service.localhost/"), id="issuer-trailing-slash"
        ),
        pytest.param(lambda mint, _key: mint(azp="https://evil.example"), id="foreign-azp"),
        pytest.param(lambda mint, _key: mint(azp=None), id="no-azp"),
        pytest.param(lambda mint, _key: mint("org_2notauser"), id="sub-not-a-user"),
        pytest.param(lambda mint, _key: mint(sid=None), id="jwt-template-token-without-sid"),
        pytest.param(lambda mint, _key: mint(sid="notasession"), id="sid-not-a-session"),
        pytest.param(lambda mint, _key: mint(sts="pending"), id="pending-session"),
    ],
)
def test_attack_is_refused_with_nothing_changed(token_scene, mint, signing_key, lambda_context, forge):
    token = forge(mint, signing_key)

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=token)

    assert_refused(answer, token_scene)


def test_lone_surrogate_in_bearer_token_is_401_not_500(token_scene, lambda_context):
    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token="\ud800abc")

    assert_refused(answer, token_scene)


def test_lone_surrogate_in_session_cookie_is_401_not_500(token_scene, lambda_context):
    event = http_api_event(
        "POST", "/api/messages/cancel", headers={"content-type": "application/json"}, body='{"projectId":"x"}'
    )
    event["cookies"] = ["__session=\ud800abc"]

    assert_refused(invoke(event, lambda_context), token_scene)


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
def test_malleated_token_segment_is_refused(
    token_scene, mint, lambda_context, segment, change, length_remainder
):
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

    assert_refused(answer, token_scene)


@pytest.mark.usefixtures("token_scene")
def test_genuine_token_segments_are_canonical_and_accepted(mint, lambda_context):
    token = mint()
    for part in token.split("."):
        assert base64.urlsafe_b64encode(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))).decode() == (
            part + "=" * (-len(part) % 4)
        )
    assert post_cancel(lambda_context, {"projectId": PROJECT}, token=token).status == 200
