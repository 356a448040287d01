"""A token's time claims are JSON numbers, nothing else: strings, booleans, null, containers,
infinities and NaN are refused; huge integers are compared as numbers."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from cancel_service.adapters.clerk import SessionTokenVerifier, StaticKey
from cancel_service.errors import AuthenticationFailed
from devstack.clerk import DEV_ISSUER, DEV_ORIGIN, SigningKey
from support.constants import OWNER, PROJECT
from support.http_api import post_cancel
from support.token_scene import assert_refused


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
        pytest.param(lambda _t: "true", id="true"),
        pytest.param(lambda _t: "false", id="false"),
        pytest.param(lambda _t: "null", id="null"),
        pytest.param(lambda t: "[" + str(t) + "]", id="array"),
        pytest.param(lambda t: '{"v":' + str(t) + "}", id="object"),
    ],
)
def test_time_claim_that_is_not_a_json_number_is_refused(
    token_scene, mint, signing_key, lambda_context, claim, spelling
):
    claims = jwt.decode(mint(), options={"verify_signature": False})
    token = _sign_payload_text(signing_key, _payload_text(claims, **{claim: spelling(claims[claim])}))

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=token)

    assert_refused(answer, token_scene)


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
