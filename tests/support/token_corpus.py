"""The token corpus: every kind of token the contract refuses, each with the answer it must get,
and genuine controls built from the same blocks (the corpus cannot pass by refusing all)."""

from __future__ import annotations

import json
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, RSAPSSAlgorithm

from devstack.clerk import DEV_ISSUER, DEV_ORIGIN, SigningKey
from support.token_kit import (
    ALPHABET,
    FOREIGN_ORIGIN,
    SUFFIXED_COOKIE,
    Attack,
    Kit,
    Presented,
    bearer,
    in_cookie,
    json_segment,
    malleated,
    replace_segment,
    unused_bits_set,
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
    return replace_segment(mine, 2, lambda _: other.split(".")[2])


def _tampered_payload(kit: Kit) -> str:
    token = kit.mint()
    claims = jwt.decode(token, options={"verify_signature": False})
    return replace_segment(token, 1, lambda _: json_segment({**claims, "sub": "user_2victim"}))


def _tampered_header(kit: Kit) -> str:
    token = kit.mint()
    return replace_segment(token, 0, lambda _: json_segment({**jwt.get_unverified_header(token), "cty": "x"}))


def _flipped_signature_character(kit: Kit) -> str:
    def flip(signature: str) -> str:
        return ALPHABET[(ALPHABET.index(signature[0]) + 1) % 64] + signature[1:]

    return replace_segment(kit.mint(), 2, flip)


def _without_claim(claim: str) -> Callable[[Kit], str]:
    return lambda kit: kit.mint(**{claim: None})


def _with_raw_claim(claim: str, text: Callable[[int], str]) -> Callable[[Kit], str]:
    """The claim as the JSON text `text` makes of the current time."""
    return lambda kit: kit.with_raw_claim(claim, text(kit.now))


def _genuine(kit: Kit) -> str:
    return kit.mint()


ATTACKS = [
    # form: canonical base64url, three non-empty segments, at most 8 KiB, ASCII only
    Attack("signature-double-padding", bearer(malleated(2, lambda s: s + "==", {2}))),
    Attack("signature-single-padding", bearer(malleated(2, lambda s: s + "=", {2}))),
    Attack("header-double-padding", bearer(malleated(0, lambda s: s + "==", {2}))),
    Attack("header-single-padding", bearer(malleated(0, lambda s: s + "=", {3}))),
    Attack("payload-double-padding", bearer(malleated(1, lambda s: s + "==", {2}))),
    Attack("payload-single-padding", bearer(malleated(1, lambda s: s + "=", {3}))),
    Attack("signature-character-appended", bearer(malleated(2, lambda s: s + "A", {1, 2, 3}))),
    Attack("header-character-appended", bearer(malleated(0, lambda s: s + "A", {1, 2, 3}))),
    Attack("payload-character-appended", bearer(malleated(1, lambda s: s + "A", {1, 2, 3}))),
    Attack("signature-unused-bits-set", bearer(malleated(2, unused_bits_set, {2, 3}))),
    Attack("header-unused-bits-set", bearer(malleated(0, unused_bits_set, {2, 3}))),
    Attack("payload-unused-bits-set", bearer(malleated(1, unused_bits_set, {2, 3}))),
    Attack(
        "standard-alphabet-plus", bearer(lambda kit: replace_segment(kit.mint(), 2, lambda s: "+" + s[1:]))
    ),
    Attack(
        "standard-alphabet-slash", bearer(lambda kit: replace_segment(kit.mint(), 2, lambda s: "/" + s[1:]))
    ),
    Attack(
        "space-inside-token",
        bearer(lambda kit: replace_segment(kit.mint(), 1, lambda s: s[:8] + " " + s[8:])),
    ),
    Attack(
        "nul-inside-token",
        bearer(lambda kit: replace_segment(kit.mint(), 1, lambda s: s[:8] + "\0" + s[8:])),
    ),
    Attack("two-segments", bearer(lambda kit: kit.mint().rsplit(".", 1)[0])),
    Attack("four-segments", bearer(lambda kit: kit.mint() + ".AAAA")),
    Attack("one-segment", bearer(lambda kit: kit.mint().replace(".", ""))),
    Attack("all-segments-empty", bearer(lambda _kit: "..")),
    Attack("empty-header", bearer(lambda kit: replace_segment(kit.mint(), 0, lambda _: ""))),
    Attack("empty-payload", bearer(lambda kit: replace_segment(kit.mint(), 1, lambda _: ""))),
    Attack("over-8-kib", bearer(lambda kit: kit.mint(padding="x" * 8 * 1024))),
    Attack(
        "non-ascii-letter", bearer(lambda kit: replace_segment(kit.mint(), 1, lambda s: s[:8] + "é" + s[8:]))
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
    Attack("signature-truncated", bearer(lambda kit: replace_segment(kit.mint(), 2, lambda s: s[:-4]))),
    # claims
    *(Attack(f"{claim}-missing", bearer(_without_claim(claim))) for claim in ("exp", "iat", "nbf")),
    *(
        Attack(f"{claim}-{kind}", bearer(_with_raw_claim(claim, text)))
        for claim in ("exp", "iat", "nbf")
        for kind, text in (
            ("numeric-string", lambda now: json.dumps(str(now))),
            ("boolean", lambda _now: "true"),
            ("null", lambda _now: "null"),
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
    Attack("bearer-without-token", lambda _kit: Presented({"authorization": "Bearer"})),
    Attack("bearer-with-blank-token", lambda _kit: Presented({"authorization": "Bearer   "})),
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
