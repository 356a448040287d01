"""A stand-in for a Clerk instance: RSA signing keys, session tokens shaped like Clerk's, and a
JWKS endpoint served over HTTP on loopback."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

# Development only: the key that signs the tokens of events/ and of the local stack. A deployed
# function never trusts it (it verifies against the real instance's JWKS and issuer).
DEV_KEY_PATH = Path(__file__).with_name("dev-clerk-key.pem")
DEV_KID = "dev-clerk-key"
DEV_ISSUER = "https://clerk.cancel-service.localhost"
DEV_ORIGIN = "http://127.0.0.1:3000"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        return cls(
            kid or f"ins_{uuid.uuid4().hex[:12]}",
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )

    @classmethod
    def development(cls) -> SigningKey:
        key = serialization.load_pem_private_key(DEV_KEY_PATH.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return cls(DEV_KID, key)

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def public_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(
        self, claims: dict[str, Any], headers: dict[str, Any] | None = None, algorithm: str = "RS256"
    ) -> str:
        """Sign `claims`; a header given as None is left out (to forge tokens without a `kid`)."""
        merged = {"kid": self.kid, **(headers or {})}
        return jwt.encode(
            claims,
            self.private_key,
            algorithm=algorithm,
            headers={k: v for k, v in merged.items() if v is not None},
        )


def session_claims(
    user_id: str,
    *,
    issuer: str = DEV_ISSUER,
    session_id: str | None = None,
    org_id: str | None = None,
    azp: str | None = DEV_ORIGIN,
    lifetime: int = 60,
    now: int | None = None,
) -> dict[str, Any]:
    """Claims of a Clerk v2 session token (the active organization, if any, under `o`)."""
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": user_id,
        "sid": session_id or f"sess_{uuid.uuid4().hex[:24]}",
        "iat": issued,
        "nbf": issued - 10,
        "exp": issued + lifetime,
        "v": 2,
        "fva": [0, -1],
    }
    if azp is not None:
        claims["azp"] = azp
    if org_id is not None:
        claims["o"] = {"id": org_id, "rol": "admin", "slg": org_id.removeprefix("org_")}
    return claims


@dataclass
class JwksServer:
    """Serves `/.well-known/jwks.json` on 127.0.0.1; counts fetches; can be switched off."""

    keys: list[SigningKey]
    available: bool = True
    fetches: int = 0
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/.well-known/jwks.json"

    def start(self, port: int = 0) -> JwksServer:
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/.well-known/jwks.json":
                    self.send_error(404)
                    return
                jwks.fetches += 1
                if not jwks.available:
                    self.send_error(503)
                    return
                body = json.dumps({"keys": [key.public_jwk() for key in jwks.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests and the local stack print what matters themselves."""

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        # A short poll interval: stopping the server (once per test) waits for one poll.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="jwks"
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> JwksServer:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
