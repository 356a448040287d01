"""Every kind of token the contract refuses, sent to the HTTP function: each is refused with the
exact answer of the contract and changes nothing (no event published, no message cancelled).

The genuine token is accepted in the same setting, so the corpus cannot pass by refusing all.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

from cancel_service.adapters.clerk import cookie_suffix
from devstack.apigw import http_api_event
from devstack.clerk import DEV_ISSUER, DEV_ORIGIN, SigningKey, session_claims
from support.constants import CANCEL_PATH, OWNER, PROJECT
from support.http_api import Answer, invoke
from support.store import Store

pytestmark = pytest.mark.proof

PROCESSING = ("k58xyz789ghi012", "k59abc456def789")
PUBLISHABLE_KEY = "pk_test_Y2xlcmsuY2FuY2VsLXNlcnZpY2UubG9jYWxob3N0JA"
SUFFIXED_COOKIE = f"__session_{cookie_suffix(PUBLISHABLE_KEY)}"
FOREIGN_ORIGIN = "https://evil.example"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
REFUSED_401 = {
    "success": False,
    "error": {"code": "unauthenticated", "message": "A valid session token is required."},
}
REFUSED_403 = {
    "success": False,
    "error": {"code": "forbidden", "message": "This origin may not use the session cookie."},
}


# --- building tokens by hand: any header, any payload text, any algorithm -------------------------


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _json_segment(value: dict[str, Any] | str) -> str:
    return _segment((value if isinstance(value, str) else json.dumps(value)).encode())


@dataclass
class Kit:
    """What an attacker can build from: the genuine key's signatures (through `mint`), the public
    key, other keys, and hand-made tokens."""

    mint: Callable[..., str]
    key: SigningKey
    other_key: SigningKey = field(default_factory=lambda: SigningKey.generate("ins_attacker"))

    @property
    def now(self) -> int:
        return int(time.time())

    def claims(self, **changes: Any) -> dict[str, Any]:
        claims = session_claims(OWNER)
        for name, value in changes.items():
            if value is None:
                claims.pop(name)
            else:
                claims[name] = value
        return claims

    def signed(
        self,
        header: dict[str, Any] | str | None = None,
        payload: dict[str, Any] | str | None = None,
        sign: Callable[[bytes], bytes] | None = None,
    ) -> str:
        """A token with exactly this header and payload, RS256-signed by the genuine key unless
        `sign` says otherwise."""
        header = {"alg": "RS256", "kid": self.key.kid, "typ": "JWT"} if header is None else header
        signing_input = f"{_json_segment(header)}.{_json_segment(payload or self.claims())}"
        signature = (sign or self.rs256)(signing_input.encode())
        return f"{signing_input}.{_segment(signature)}"

    def rs256(self, data: bytes) -> bytes:
        return RSAAlgorithm(RSAAlgorithm.SHA256).sign(data, self.key.private_key)

    def header(self, **changes: Any) -> dict[str, Any]:
        header = {"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}
        for name, value in changes.items():
            if value is None:
                header.pop(name)
            else:
                header[name] = value
        return header

    def with_raw_claim(self, name: str, json_text: str) -> str:
        """The genuine claims with one claim written as raw JSON text, signed by the genuine key."""
        claims = self.claims(**{name: None})
        body = json.dumps(claims)[:-1] + f", {json.dumps(name)}: {json_text}}}"
        return self.signed(payload=body)

    def token_with_segment_remainder(self, segment: int, remainders: set[int]) -> str:
        """A genuine token whose chosen segment has a length modulo 4 in `remainders`."""
        return next(
            token
            for token in (
                self.mint(pad="x" * claim_extra, headers={"pad": "y" * header_extra})
                for claim_extra in range(4)
                for header_extra in range(4)
            )
            if len(token.split(".")[segment]) % 4 in remainders
        )


def _replace_segment(token: str, index: int, change: Callable[[str], str]) -> str:
    segments = token.split(".")
    segments[index] = change(segments[index])
    return ".".join(segments)


def _unused_bits_set(segment: str) -> str:
    unused_bits = {2: 4, 3: 2}[len(segment) % 4]
    return segment[:-1] + ALPHABET[ALPHABET.index(segment[-1]) | ((1 << unused_bits) - 1)]


def _malleated(segment: int, change: Callable[[str], str], remainders: set[int]) -> Callable[[Kit], str]:
    return lambda kit: _replace_segment(
        kit.token_with_segment_remainder(segment, remainders), segment, change
    )


def _es256(data: bytes) -> bytes:
    return ECAlgorithm(ECAlgorithm.SHA256).sign(data, ec.generate_private_key(ec.SECP256R1()))


def _hs256_with_public_key(kit: Kit) -> str:
    """The classic confusion: HMAC keyed with the public key the verifier holds."""
    secret = kit.key.public_pem().encode()
    return kit.signed(
        kit.header(alg="HS256"), sign=lambda data: HMACAlgorithm(HMACAlgorithm.SHA256).sign(data, secret)
    )


def _signature_of_another_token(kit: Kit) -> str:
    mine, other = kit.mint(), kit.mint(sid="sess_2another000000000000000")
    return _replace_segment(mine, 2, lambda _: other.split(".")[2])


def _tampered_payload(kit: Kit) -> str:
    token = kit.mint()
    claims = jwt.decode(token, options={"verify_signature": False})
    return _replace_segment(token, 1, lambda _: _json_segment({**claims, "sub": "user_2victim"}))


def _tampered_header(kit: Kit) -> str:
    token = kit.mint()
    return _replace_segment(
        token, 0, lambda _: _json_segment({**jwt.get_unverified_header(token), "cty": "x"})
    )


def _flipped_signature_character(kit: Kit) -> str:
    def flip(signature: str) -> str:
        return ALPHABET[(ALPHABET.index(signature[0]) + 1) % 64] + signature[1:]

    return _replace_segment(kit.mint(), 2, flip)


# --- requests: where the token is presented ---------------------------------------------------------


@dataclass(frozen=True)
class Presented:
    headers: dict[str, str]
    cookies: tuple[str, ...] = ()


def bearer(make: Callable[[Kit], str]) -> Callable[[Kit], Presented]:
    return lambda kit: Presented({"authorization": f"Bearer {make(kit)}"})


def in_cookie(make: Callable[[Kit], str], *, name: str = "__session", origin: str | None = None):
    def presented(kit: Kit) -> Presented:
        return Presented({"origin": origin} if origin else {}, (f"{name}={make(kit)}",))

    return presented


@dataclass(frozen=True)
class Attack:
    name: str
    presented: Callable[[Kit], Presented]
    status: int = 401
    # False when the request carries nothing the service reads as a token (challenge without error).
    token_sent: bool = True
    publishable_key: bool = False


def _genuine(kit: Kit) -> str:
    return kit.mint()


ATTACKS = [
    # form: canonical base64url, three non-empty segments, at most 8 KiB, ASCII only
    Attack("signature-double-padding", bearer(_malleated(2, lambda s: s + "==", {2}))),
    Attack("signature-single-padding", bearer(_malleated(2, lambda s: s + "=", {2}))),
    Attack("header-double-padding", bearer(_malleated(0, lambda s: s + "==", {2}))),
    Attack("header-single-padding", bearer(_malleated(0, lambda s: s + "=", {3}))),
    Attack("payload-double-padding", bearer(_malleated(1, lambda s: s + "==", {2}))),
    Attack("payload-single-padding", bearer(_malleated(1, lambda s: s + "=", {3}))),
    Attack("signature-character-appended", bearer(_malleated(2, lambda s: s + "A", {1, 2, 3}))),
    Attack("header-character-appended", bearer(_malleated(0, lambda s: s + "A", {1, 2, 3}))),
    Attack("payload-character-appended", bearer(_malleated(1, lambda s: s + "A", {1, 2, 3}))),
    Attack("signature-unused-bits-set", bearer(_malleated(2, _unused_bits_set, {2, 3}))),
    Attack("header-unused-bits-set", bearer(_malleated(0, _unused_bits_set, {2, 3}))),
    Attack("payload-unused-bits-set", bearer(_malleated(1, _unused_bits_set, {2, 3}))),
    Attack(
        "standard-alphabet-plus", bearer(lambda kit: _replace_segment(kit.mint(), 2, lambda s: "+" + s[1:]))
    ),
    Attack(
        "standard-alphabet-slash", bearer(lambda kit: _replace_segment(kit.mint(), 2, lambda s: "/" + s[1:]))
    ),
    Attack(
        "space-inside-token",
        bearer(lambda kit: _replace_segment(kit.mint(), 1, lambda s: s[:8] + " " + s[8:])),
    ),
    Attack(
        "nul-inside-token",
        bearer(lambda kit: _replace_segment(kit.mint(), 1, lambda s: s[:8] + "\0" + s[8:])),
    ),
    Attack("two-segments", bearer(lambda kit: kit.mint().rsplit(".", 1)[0])),
    Attack("four-segments", bearer(lambda kit: kit.mint() + ".AAAA")),
    Attack("one-segment", bearer(lambda kit: kit.mint().replace(".", ""))),
    Attack("all-segments-empty", bearer(lambda kit: "..")),
    Attack("empty-header", bearer(lambda kit: _replace_segment(kit.mint(), 0, lambda _: ""))),
    Attack("empty-payload", bearer(lambda kit: _replace_segment(kit.mint(), 1, lambda _: ""))),
    Attack("over-8-kib", bearer(lambda kit: kit.mint(padding="x" * 8 * 1024))),
    Attack(
        "non-ascii-letter", bearer(lambda kit: _replace_segment(kit.mint(), 1, lambda s: s[:8] + "é" + s[8:]))
    ),
    Attack("fullwidth-letters", bearer(lambda kit: kit.mint().replace("e", "\uff45"))),
    Attack("lone-surrogate-bearer", bearer(lambda kit: "\ud800" + kit.mint())),
    Attack("lone-surrogate-cookie", in_cookie(lambda kit: kit.mint() + "\udfff")),
    # header
    Attack("alg-none-unsigned", bearer(lambda kit: kit.signed(kit.header(alg="none"), sign=lambda _: b""))),
    Attack("alg-none-genuine-signature", bearer(lambda kit: kit.signed(kit.header(alg="none")))),
    Attack("alg-missing", bearer(lambda kit: kit.signed(kit.header(alg=None)))),
    Attack("alg-lower-case", bearer(lambda kit: kit.signed(kit.header(alg="rs256")))),
    Attack("alg-list", bearer(lambda kit: kit.signed(kit.header(alg=["RS256"])))),
    Attack("alg-hs256-public-key-secret", bearer(_hs256_with_public_key)),
    Attack("alg-rs384", bearer(lambda kit: kit.key.sign(kit.claims(), algorithm="RS384"))),
    Attack("alg-rs512", bearer(lambda kit: kit.key.sign(kit.claims(), algorithm="RS512"))),
    Attack(
        "alg-ps256",
        bearer(
            lambda kit: kit.signed(
                kit.header(alg="PS256"),
                sign=lambda data: RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256).sign(data, kit.key.private_key),
            )
        ),
    ),
    Attack("alg-es256", bearer(lambda kit: kit.signed(kit.header(alg="ES256"), sign=_es256))),
    Attack("kid-missing", bearer(lambda kit: kit.signed(kit.header(kid=None)))),
    Attack("kid-unknown", bearer(lambda kit: kit.signed(kit.header(kid="ins_unknown")))),
    Attack("kid-empty", bearer(lambda kit: kit.signed(kit.header(kid="")))),
    Attack("kid-number", bearer(lambda kit: kit.signed(kit.header(kid=1)))),
    Attack("kid-list", bearer(lambda kit: kit.signed(kit.header(kid=[kit.key.kid])))),
    Attack("jku", bearer(lambda kit: kit.signed(kit.header(jku="https://evil.example/jwks.json")))),
    Attack("x5u", bearer(lambda kit: kit.signed(kit.header(x5u="https://evil.example/cert.pem")))),
    Attack("jwk-embedded", bearer(lambda kit: kit.signed(kit.header(jwk=kit.key.public_jwk())))),
    Attack("x5c", bearer(lambda kit: kit.signed(kit.header(x5c=["MIIB"])))),
    Attack("crit", bearer(lambda kit: kit.signed(kit.header(crit=["exp"])))),
    Attack("typ-at-jwt", bearer(lambda kit: kit.signed(kit.header(typ="at+jwt")))),
    Attack("typ-lower-case", bearer(lambda kit: kit.signed(kit.header(typ="jwt")))),
    Attack("typ-null", bearer(lambda kit: kit.signed({**kit.header(), "typ": None}))),
    Attack("header-not-an-object", bearer(lambda kit: kit.signed('["RS256"]'))),
    # signature
    Attack("wrong-key-same-kid", bearer(lambda kit: kit.mint(key=SigningKey.generate(kit.key.kid)))),
    Attack("attacker-key-own-kid", bearer(lambda kit: kit.mint(key=kit.other_key))),
    Attack("signature-stripped", bearer(lambda kit: kit.mint().rsplit(".", 1)[0] + ".")),
    Attack("signature-of-another-token", bearer(_signature_of_another_token)),
    Attack("payload-tampered", bearer(_tampered_payload)),
    Attack("header-tampered", bearer(_tampered_header)),
    Attack("signature-character-flipped", bearer(_flipped_signature_character)),
    Attack("signature-truncated", bearer(lambda kit: _replace_segment(kit.mint(), 2, lambda s: s[:-4]))),
    # claims
    *(
        Attack(f"{claim}-missing", bearer(lambda kit, c=claim: kit.mint(**{c: None})))
        for claim in ("exp", "iat", "nbf")
    ),
    *(
        Attack(f"{claim}-{kind}", bearer(lambda kit, c=claim, t=text: kit.with_raw_claim(c, t(kit.now))))
        for claim in ("exp", "iat", "nbf")
        for kind, text in (
            ("numeric-string", lambda now: json.dumps(str(now))),
            ("boolean", lambda now: "true"),
            ("null", lambda now: "null"),
        )
    ),
    Attack("exp-overflowing-number", bearer(lambda kit: kit.with_raw_claim("exp", "1e400"))),
    Attack("exp-nan", bearer(lambda kit: kit.with_raw_claim("exp", "NaN"))),
    Attack("expired-beyond-leeway", bearer(lambda kit: kit.mint(exp=kit.now - 10))),
    Attack("nbf-future-beyond-leeway", bearer(lambda kit: kit.mint(nbf=kit.now + 10))),
    Attack("iat-future-beyond-leeway", bearer(lambda kit: kit.mint(iat=kit.now + 60))),
    Attack("iss-missing", bearer(lambda kit: kit.mint(iss=None))),
    Attack("iss-other", bearer(lambda kit: kit.mint(iss="https://clerk.evil.example"))),
    Attack("iss-trailing-slash", bearer(lambda kit: kit.mint(iss=DEV_ISSUER + "/"))),
    Attack("iss-upper-case", bearer(lambda kit: kit.mint(iss=DEV_ISSUER.upper()))),
    Attack("iss-list", bearer(lambda kit: kit.signed(payload=kit.claims(iss=[DEV_ISSUER])))),
    Attack("azp-missing", bearer(lambda kit: kit.mint(azp=None))),
    Attack("azp-other-origin", bearer(lambda kit: kit.mint(azp=FOREIGN_ORIGIN))),
    Attack("azp-trailing-slash", bearer(lambda kit: kit.mint(azp=DEV_ORIGIN + "/"))),
    Attack("azp-list", bearer(lambda kit: kit.mint(azp=[DEV_ORIGIN]))),
    Attack("sub-an-organization", bearer(lambda kit: kit.mint("org_2team"))),
    Attack("sub-missing", bearer(lambda kit: kit.mint(sub=None))),
    Attack("sub-number", bearer(lambda kit: kit.mint(sub=42))),
    Attack("sid-missing-jwt-template", bearer(lambda kit: kit.mint(sid=None))),
    Attack("sid-not-a-session", bearer(lambda kit: kit.mint(sid="tmpl_2abc"))),
    Attack("sts-pending", bearer(lambda kit: kit.mint(sts="pending"))),
    # how the token is presented
    Attack("scheme-basic", lambda kit: Presented({"authorization": f"Basic {kit.mint()}"}), token_sent=False),
    Attack("scheme-token", lambda kit: Presented({"authorization": f"Token {kit.mint()}"}), token_sent=False),
    Attack(
        "scheme-glued-to-token",
        lambda kit: Presented({"authorization": f"Bearer{kit.mint()}"}),
        token_sent=False,
    ),
    Attack("bearer-without-token", lambda kit: Presented({"authorization": "Bearer"})),
    Attack("bearer-with-blank-token", lambda kit: Presented({"authorization": "Bearer   "})),
    Attack("two-tokens", lambda kit: Presented({"authorization": f"Bearer {kit.mint()} {kit.mint()}"})),
    Attack(
        "two-bearer-credentials",
        lambda kit: Presented({"authorization": f"Bearer {kit.mint()}, Bearer {kit.mint()}"}),
    ),
    Attack("quoted-token", lambda kit: Presented({"authorization": f'Bearer "{kit.mint()}"'})),
    Attack(
        "lower-case-scheme-forged",
        lambda kit: Presented({"authorization": f"bearer {kit.mint(key=kit.other_key)}"}),
    ),
    Attack(
        "upper-case-scheme-forged",
        lambda kit: Presented({"authorization": f"BEARER {kit.mint(key=kit.other_key)}"}),
    ),
    Attack(
        "forged-bearer-beside-genuine-cookie",
        lambda kit: Presented({"authorization": "Bearer forged"}, (f"__session={kit.mint()}",)),
    ),
    Attack("cookie-forged", in_cookie(lambda kit: kit.mint(key=kit.other_key))),
    Attack("cookie-malleated", in_cookie(lambda kit: kit.mint() + "==")),
    Attack("cookie-name-other-case", in_cookie(_genuine, name="__Session"), token_sent=False),
    Attack(
        "suffixed-cookie-forged-beside-genuine-plain",
        lambda kit: Presented(
            {}, (f"{SUFFIXED_COOKIE}={kit.mint(key=kit.other_key)}", f"__session={kit.mint()}")
        ),
        publishable_key=True,
    ),
    Attack("cookie-foreign-origin", in_cookie(_genuine, origin=FOREIGN_ORIGIN), status=403),
    Attack("cookie-null-origin", in_cookie(_genuine, origin="null"), status=403),
    Attack("cookie-origin-trailing-slash", in_cookie(_genuine, origin=DEV_ORIGIN + "/"), status=403),
    Attack(
        "suffixed-cookie-foreign-origin",
        in_cookie(_genuine, name=SUFFIXED_COOKIE, origin=FOREIGN_ORIGIN),
        status=403,
        publishable_key=True,
    ),
]

# Controls: the same building blocks, genuine, are accepted (the corpus cannot pass by refusing all).
CONTROLS = [
    Attack("genuine-bearer", bearer(_genuine), status=200),
    Attack(
        "genuine-bearer-lower-case-scheme",
        lambda kit: Presented({"authorization": f"bearer {kit.mint()}"}),
        status=200,
    ),
    Attack("genuine-hand-made", bearer(lambda kit: kit.signed()), status=200),
    Attack("genuine-cookie-own-origin", in_cookie(_genuine, origin=DEV_ORIGIN), status=200),
    Attack(
        "genuine-suffixed-cookie", in_cookie(_genuine, name=SUFFIXED_COOKIE), status=200, publishable_key=True
    ),
]


# --- running them ----------------------------------------------------------------------------------


@dataclass
class Tally:
    tried: int = 0
    accepted: list[str] = field(default_factory=list)
    controls: int = 0
    controls_accepted: int = 0


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    counts = Tally()
    yield counts
    # Printed past pytest's capture, so the figures show in a normal run too.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(
            f"\ntoken corpus: {counts.tried} attacks tried, {len(counts.accepted)} accepted"
            f" {counts.accepted}; {counts.controls_accepted}/{counts.controls} genuine controls accepted"
        )


@pytest.fixture
def scene(store: Store) -> Store:
    store.put_project()
    for message_id in PROCESSING:
        store.put_message(
            message_id, execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:agent:{message_id}"
        )
    return store


def _send(
    case: Attack, kit: Kit, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Presented, Answer]:
    if case.publishable_key:
        monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", PUBLISHABLE_KEY)
    presented = case.presented(kit)
    event = http_api_event(
        "POST",
        CANCEL_PATH,
        headers={"content-type": "application/json", **presented.headers},
        body=json.dumps({"projectId": PROJECT}),
    )
    if presented.cookies:
        event["cookies"] = list(presented.cookies)
    return presented, invoke(event, lambda_context)


def _token_pieces(presented: Presented) -> list[str]:
    """The parts of what was presented long enough to be token text (not words of a message)."""
    text = " ".join([*presented.headers.values(), *presented.cookies])
    return [piece for piece in re.split(r"[\s.=,;\"]+", text) if len(piece) >= 16]


@pytest.mark.parametrize("case", ATTACKS, ids=[attack.name for attack in ATTACKS])
def test_attack_is_refused_and_changes_nothing(
    case, scene, mint, signing_key, lambda_context, monkeypatch, tally
):
    presented, answer = _send(case, Kit(mint, signing_key), lambda_context, monkeypatch)
    tally.tried += 1
    if answer.status == 200:
        tally.accepted.append(case.name)

    assert answer.status == case.status
    if case.status == 401:
        challenge = 'Bearer error="invalid_token"' if case.token_sent else "Bearer"
        assert answer.headers["WWW-Authenticate"] == challenge
        assert answer.body == REFUSED_401
    else:
        assert "WWW-Authenticate" not in answer.headers
        assert answer.body == REFUSED_403
    assert answer.headers["Cache-Control"] == "no-store"
    assert not any(piece in json.dumps(answer.body) for piece in _token_pieces(presented))
    assert scene.published() == []
    assert [scene.status(message_id) for message_id in PROCESSING] == ["processing"] * len(PROCESSING)


@pytest.mark.parametrize("case", CONTROLS, ids=[control.name for control in CONTROLS])
def test_genuine_token_is_accepted(case, scene, mint, signing_key, lambda_context, monkeypatch, tally):
    _, answer = _send(case, Kit(mint, signing_key), lambda_context, monkeypatch)
    tally.controls += 1
    tally.controls_accepted += answer.status == 200

    assert answer.status == 200
    assert sorted(answer.body["messageIds"]) == sorted(PROCESSING)
    assert len(scene.published()) == len(PROCESSING)


def test_corpus_is_large_and_names_are_distinct():
    names = [attack.name for attack in ATTACKS + CONTROLS]
    assert len(set(names)) == len(names)
    assert len(ATTACKS) >= 60
