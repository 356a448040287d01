"""Clerk session tokens: where they come from, the instance's JWKS, and every check of the contract.

Checks run in the contract's order: form, size and header first (no key is looked up for a token
that could never be accepted), then the signature, then the claims.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import jwt

from cancel_service.errors import AuthenticationFailed, DependencyUnavailable, OriginForbidden
from cancel_service.models import Caller
from cancel_service.observability import logger, tracer

MAX_TOKEN_BYTES = 8 * 1024
LEEWAY_SECONDS = 5
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "iss", "sub", "sid")
TIME_CLAIMS = ("exp", "iat", "nbf")
# One base64url segment without padding; canonical form is checked on top (see _is_canonical).
_BASE64URL_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
# Headers that would let a token choose its own key or demand unknown processing.
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
SESSION_COOKIE = "__session"
# Why PyJWT refused a token, as a label for logs and metrics (checked in order: subclasses first).
_DECODE_FAILURES: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
)


def _is_canonical_base64url(segment: str) -> bool:
    """Unpadded base64url whose decoded bytes encode back to the very same text.

    PyJWT decodes leniently (trailing `=`, unused low bits of the last character), so several
    spellings would verify as one token; only the canonical spelling is accepted.
    """
    if not _BASE64URL_SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        return False
    decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return base64.urlsafe_b64encode(decoded).decode().rstrip("=") == segment


def _is_json_number(value: object) -> bool:
    """An integer or a finite float as JSON parsed it: not a numeric string, boolean or null."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


# --- where the token comes from -----------------------------------------------------------------


class PresentedToken(NamedTuple):
    value: str
    from_cookie: bool


def cookie_suffix(publishable_key: str) -> str:
    """Clerk's suffix for `__session_<suffix>`: unpadded base64url of SHA-1(publishable key), 8 chars."""
    digest = hashlib.sha1(publishable_key.encode(), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:8]


def _parse_cookies(cookies: Sequence[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for header in cookies:
        for pair in header.split(";"):
            name, sep, value = pair.strip().partition("=")
            if sep and name not in parsed:
                parsed[name] = value.strip()
    return parsed


def presented_token(
    headers: Mapping[str, str], cookies: Sequence[str], publishable_key: str | None
) -> PresentedToken | None:
    """The session token: `Authorization: Bearer`, else Clerk's (suffixed, then plain) cookie."""
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return PresentedToken(credentials.strip(), from_cookie=False)
    jar = _parse_cookies(cookies)
    names = [f"{SESSION_COOKIE}_{cookie_suffix(publishable_key)}"] if publishable_key else []
    for name in [*names, SESSION_COOKIE]:
        if jar.get(name):
            return PresentedToken(jar[name], from_cookie=True)
    return None


# --- the instance's keys ---------------------------------------------------------------------------


class JwksCache:
    """The instance's JWKS, fetched lazily and kept for the life of the container.

    An unknown `kid` (Clerk rotated its keys) triggers a refetch, at most one per
    `refetch_interval`, so a flood of forged `kid`s costs one fetch per interval. Concurrent misses
    wait on one lock and share the fetch made by the first. A failed refetch keeps the cached set;
    with no set at all the keys are unavailable (503), not the token invalid (401).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        refetch_interval: float = 30.0,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._refetch_interval = refetch_interval
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None

    def key(self, kid: str) -> jwt.PyJWK:
        keys = self._keys
        if keys is not None and kid in keys and self._clock() - self._fetched_at < self._max_age:
            return keys[kid]
        with self._lock:
            now = self._clock()
            if self._attempted_at is None or now - self._attempted_at >= self._refetch_interval:
                self._attempted_at = now
                self._refresh(now)
            if self._keys is None:
                raise DependencyUnavailable("jwks")
            try:
                return self._keys[kid]
            except KeyError:
                raise AuthenticationFailed("unknown_kid") from None

    def _refresh(self, now: float) -> None:
        try:
            self._keys = self._fetch()
            self._fetched_at = now
        except Exception as error:  # noqa: BLE001 - any failure leaves the cached set in service
            logger.warning(
                "JWKS fetch failed", extra={"error": type(error).__name__, "has_cached_set": bool(self._keys)}
            )

    @tracer.capture_method(capture_response=False)
    def _fetch(self) -> dict[str, jwt.PyJWK]:
        # The standard library's client: an HTTP library would add tens of modules to the cold
        # start of the first request, for one GET per container.
        opener = urllib.request.build_opener(_NoRedirects)
        with opener.open(self._url, timeout=self._timeout) as response:
            document = json.load(response)
        keys = jwt.PyJWKSet.from_dict(document).keys
        return {
            key.key_id: key
            for key in keys
            if key.key_id and key.key_type == "RSA" and key.public_key_use != "enc"
        }


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: the JWKS is read from its configured location or not at all."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


class StaticKey:
    """`CLERK_JWT_KEY`: one PEM public key, verified against with no network at all."""

    def __init__(self, pem: str) -> None:
        from jwt.algorithms import RSAAlgorithm

        public_key = RSAAlgorithm(RSAAlgorithm.SHA256).prepare_key(pem)
        self._key = jwt.PyJWK(RSAAlgorithm.to_jwk(public_key, as_dict=True), algorithm="RS256")

    def key(self, _kid: str, /) -> jwt.PyJWK:
        return self._key  # the one key, whatever the token's `kid`


class KeySource(Protocol):
    def key(self, kid: str, /) -> jwt.PyJWK: ...


# --- the token itself ------------------------------------------------------------------------------


def _claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def _active_org_id(claims: Mapping[str, Any]) -> str | None:
    """Clerk v2 tokens carry the active organization as `o.id`; v1 tokens as `org_id`."""
    org = claims.get("o")
    if isinstance(org, Mapping) and isinstance(org.get("id"), str):
        return str(org["id"])
    return _claim(claims, "org_id")


class SessionTokenVerifier:
    def __init__(self, issuer: str, authorized_parties: frozenset[str], keys: KeySource) -> None:
        self._issuer = issuer
        self._authorized_parties = authorized_parties
        self._keys = keys

    def verify(self, token: str) -> Caller:
        self._check_form(token)
        kid = self._checked_kid(token)
        claims = self._decode(token, self._keys.key(kid))
        return self._caller(claims)

    @staticmethod
    def _check_form(token: str) -> None:
        # ASCII first: every later step may then treat characters as bytes.
        if not token or not token.isascii():
            raise AuthenticationFailed("malformed")
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationFailed("too_large")
        segments = token.split(".")
        if len(segments) != 3 or not all(_is_canonical_base64url(segment) for segment in segments):
            raise AuthenticationFailed("malformed")

    def _checked_kid(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthenticationFailed("malformed") from None
        if header.get("alg") != "RS256":
            raise AuthenticationFailed("bad_alg")
        if FORBIDDEN_HEADERS & header.keys():
            raise AuthenticationFailed("forbidden_header")
        if "typ" in header and header["typ"] != "JWT":
            raise AuthenticationFailed("bad_typ")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationFailed("missing_kid")
        return kid

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(REQUIRED_CLAIMS), "verify_aud": False},
            )
        except jwt.InvalidTokenError as error:
            reason = next((label for kind, label in _DECODE_FAILURES if isinstance(error, kind)), "invalid")
            raise AuthenticationFailed(reason) from None
        # PyJWT compares the time claims through int(), which takes "1700000000" and True too.
        if not all(_is_json_number(claims[name]) for name in TIME_CLAIMS):
            raise AuthenticationFailed("bad_time_claim")
        return claims

    def _caller(self, claims: Mapping[str, Any]) -> Caller:
        if self._authorized_parties and _claim(claims, "azp") not in self._authorized_parties:
            raise AuthenticationFailed("unauthorized_party")
        user_id, session_id = _claim(claims, "sub"), _claim(claims, "sid")
        if not user_id or not user_id.startswith("user_"):
            raise AuthenticationFailed("not_a_user")
        if not session_id or not session_id.startswith("sess_"):
            raise AuthenticationFailed("not_a_session")
        if claims.get("sts") == "pending":
            raise AuthenticationFailed("pending_session")
        return Caller(user_id=user_id, session_id=session_id, org_id=_active_org_id(claims))


# --- who sent the request ----------------------------------------------------------------------------


class SessionAuthenticator:
    """The caller of a request: its session token found, verified, and taken from a cookie only
    when the request comes from one of the app's own origins (a cookie rides along with any
    cross-site request)."""

    def __init__(
        self, verifier: SessionTokenVerifier, authorized_parties: frozenset[str], publishable_key: str | None
    ) -> None:
        self._verifier = verifier
        self._authorized_parties = authorized_parties
        self._publishable_key = publishable_key

    def caller(self, headers: Mapping[str, str], cookies: Sequence[str]) -> Caller:
        """Raise AuthenticationFailed (no acceptable token) or OriginForbidden (a cookie from a
        foreign origin)."""
        token = presented_token(headers, cookies, self._publishable_key)
        if token is None:
            raise AuthenticationFailed("missing_token", token_sent=False)
        caller = self._verifier.verify(token.value)
        origin = headers.get("origin")
        parties = self._authorized_parties
        if token.from_cookie and origin and parties and origin not in parties:
            raise OriginForbidden(origin)
        return caller
