"""The JWKS cache: lazy, shared, bounded under floods, stale-tolerant, 503 when nothing is cached."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cancel_service.adapters.clerk import JwksCache
from cancel_service.errors import AuthenticationFailed, DependencyUnavailable
from devstack.clerk import JwksServer, SigningKey
from support.constants import PROJECT
from support.http_api import post_cancel
from support.store import Store


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def scene(store: Store) -> Store:
    store.put_project()
    store.put_message("m1")
    return store


@pytest.mark.usefixtures("scene")
def test_importing_and_building_the_function_fetches_nothing(jwks):
    from cancel_service import runtime
    from cancel_service.handlers import cancel_http  # noqa: F401

    runtime.session_verifier()

    assert jwks.fetches == 0


@pytest.mark.usefixtures("scene")
def test_jwks_is_fetched_once_for_many_requests(jwks, mint, lambda_context):
    for _ in range(10):
        assert post_cancel(lambda_context, {"projectId": PROJECT}, token=mint()).status == 200

    assert jwks.fetches == 1


def test_a_flood_of_unknown_kids_costs_at_most_one_refetch(jwks, scene, mint, lambda_context):
    assert post_cancel(lambda_context, {"projectId": PROJECT}, token=mint()).status == 200

    for attempt in range(50):
        answer = post_cancel(
            lambda_context, {"projectId": PROJECT}, token=mint(headers={"kid": f"ins_random_{attempt}"})
        )
        assert answer.status == 401

    # The set was fetched less than 30 s ago: the whole flood costs no further fetch.
    assert jwks.fetches == 1
    assert scene.status("m1") == "cancelled"


def test_unknown_kid_refetches_again_only_after_30_seconds(jwks, signing_key):
    clock = FakeClock()
    cache = JwksCache(jwks.url, clock=clock)
    cache.key(signing_key.kid)
    rotated = SigningKey.generate("ins_rotated")
    jwks.keys.append(rotated)

    clock.now += 1
    with pytest.raises(AuthenticationFailed):
        cache.key(rotated.kid)  # refetched: but the set was fetched 1 s ago, so no
    assert jwks.fetches == 1

    clock.now += 30
    assert cache.key(rotated.kid).key_id == rotated.kid  # Clerk rotated its keys: picked up
    assert jwks.fetches == 2


def test_a_minute_long_flood_of_unknown_kids_costs_one_fetch_per_30_seconds(jwks, signing_key):
    clock = FakeClock()
    cache = JwksCache(jwks.url, clock=clock)
    cache.key(signing_key.kid)

    for attempt in range(120):
        clock.now += 0.5
        with pytest.raises(AuthenticationFailed):
            cache.key(f"ins_forged_{attempt}")

    assert jwks.fetches == 1 + 2


def test_concurrent_misses_share_one_fetch(signing_key):
    fetches = 0

    class SlowJwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            nonlocal fetches
            fetches += 1
            time.sleep(0.3)
            payload = json.dumps({"keys": [signing_key.public_jwk()]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowJwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cache = JwksCache(f"http://127.0.0.1:{server.server_address[1]}/")
        results: list[str] = []
        threads = [
            threading.Thread(target=lambda: results.append(cache.key(signing_key.kid).key_id or ""))
            for _ in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.shutdown()
        server.server_close()

    assert results == [signing_key.kid] * 20
    assert fetches == 1


def test_cached_set_keeps_serving_while_the_endpoint_is_down(jwks, scene, mint, lambda_context):
    assert post_cancel(lambda_context, {"projectId": PROJECT}, token=mint()).status == 200
    jwks.available = False
    scene.put_message("m2")

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())
    unknown = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint(headers={"kid": "ins_unknown"}))

    assert answer.status == 200
    assert answer.body["messageIds"] == ["m2"]
    assert unknown.status == 401  # a set exists: an unknown kid is the token's fault


def test_stale_set_is_refreshed_after_max_age_and_kept_if_refresh_fails(jwks, signing_key):
    clock = FakeClock()
    cache = JwksCache(jwks.url, clock=clock, max_age=3600)
    cache.key(signing_key.kid)
    jwks.available = False

    clock.now += 3601
    assert cache.key(signing_key.kid).key_id == signing_key.kid
    assert jwks.fetches == 2


def test_jwks_down_on_a_cold_start_is_503_not_401(jwks, scene, mint, lambda_context):
    jwks.available = False

    answer = post_cancel(lambda_context, {"projectId": PROJECT}, token=mint())

    assert answer.status == 503
    assert answer.body["error"]["code"] == "unavailable"
    assert answer.headers["Retry-After"]
    assert answer.headers["Cache-Control"] == "no-store"
    assert scene.status("m1") == "processing"


def test_jwks_unreachable_is_unavailable(signing_key):
    with JwksServer([signing_key]) as server:
        url = server.url
    cache = JwksCache(url)  # the server is gone: connection refused

    with pytest.raises(DependencyUnavailable):
        cache.key(signing_key.kid)


def test_jwks_fetch_gives_up_after_its_timeout(signing_key):
    class Hanging(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(1.5)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hanging)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cache = JwksCache(f"http://127.0.0.1:{server.server_address[1]}/", timeout=0.2)
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable):
            cache.key(signing_key.kid)
        assert time.monotonic() - started < 1.0
    finally:
        server.shutdown()
        server.server_close()


def test_redirects_are_not_followed(signing_key):
    with JwksServer([signing_key]) as target:

        class Redirect(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("Location", target.url)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with pytest.raises(DependencyUnavailable):
                JwksCache(f"http://127.0.0.1:{server.server_address[1]}/").key(signing_key.kid)
        finally:
            server.shutdown()
            server.server_close()
        assert target.fetches == 0
