"""Tokens built by hand, as an attacker builds them (any header, any payload text, any algorithm,
the genuine key's signatures), and the places a request presents them (bearer header, cookie)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jwt.algorithms import RSAAlgorithm

from cancel_service.adapters.clerk import cookie_suffix
from devstack.clerk import SigningKey, session_claims
from support.constants import OWNER

PUBLISHABLE_KEY = "pk_test_Y2xlcmsuY2FuY2VsLXNlcnZpY2UubG9jYWxob3N0JA"
SUFFIXED_COOKIE = f"__session_{cookie_suffix(PUBLISHABLE_KEY)}"
FOREIGN_ORIGIN = "https://evil.example"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def json_segment(value: dict[str, Any] | str) -> str:
    return segment((value if isinstance(value, str) else json.dumps(value)).encode())


def _changed(values: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`values` with `changes` applied; a change to None removes the name."""
    for name, value in changes.items():
        if value is None:
            values.pop(name)
        else:
            values[name] = value
    return values


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
        return _changed(session_claims(OWNER), changes)

    def signed(
        self,
        header: dict[str, Any] | str | None = None,
        payload: dict[str, Any] | str | None = None,
        sign: Callable[[bytes], bytes] | None = None,
    ) -> str:
        """A token with exactly this header and payload, RS256-signed by the genuine key unless
        `sign` says otherwise."""
        header = self.header() if header is None else header
        signing_input = f"{json_segment(header)}.{json_segment(payload or self.claims())}"
        signature = (sign or self.rs256)(signing_input.encode())
        return f"{signing_input}.{segment(signature)}"

    def rs256(self, data: bytes) -> bytes:
        return RSAAlgorithm(RSAAlgorithm.SHA256).sign(data, self.key.private_key)

    def header(self, **changes: Any) -> dict[str, Any]:
        return _changed({"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}, changes)

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


def replace_segment(token: str, index: int, change: Callable[[str], str]) -> str:
    segments = token.split(".")
    segments[index] = change(segments[index])
    return ".".join(segments)


def unused_bits_set(segment: str) -> str:
    unused_bits = {2: 4, 3: 2}[len(segment) % 4]
    return segment[:-1] + ALPHABET[ALPHABET.index(segment[-1]) | ((1 << unused_bits) - 1)]


def malleated(segment: int, change: Callable[[str], str], remainders: set[int]) -> Callable[[Kit], str]:
    return lambda kit: replace_segment(kit.token_with_segment_remainder(segment, remainders), segment, change)


@dataclass(frozen=True)
class Presented:
    headers: dict[str, str]
    cookies: tuple[str, ...] = ()


def bearer(make: Callable[[Kit], str]) -> Callable[[Kit], Presented]:
    return lambda kit: Presented({"authorization": f"Bearer {make(kit)}"})


def in_cookie(
    make: Callable[[Kit], str], *, name: str = "__session", origin: str | None = None
) -> Callable[[Kit], Presented]:
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
