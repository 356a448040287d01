"""A flood of Stop requests against the local stack, whose gateway throttles the route as the
template's HttpApi does: the flood gets API Gateway's 429 before any function runs for it, and a
user's Stop in the middle of it is still served, its messages cancelled and its agents stopped."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import yaml
from jsonschema import validate

from devstack.constants import CANCEL_PATH, ROOT
from devstack.demo import DEMO_MESSAGES, DEMO_PROJECT, DEMO_USER
from support.local_stack import StackProcess, http

PROCESSING = sorted(message_id for message_id, _, status in DEMO_MESSAGES if status == "processing")
# Low limits, so that a few threads flood the route for sure, each pausing a little between two
# requests: a flood at 30 times the rate, which leaves this shared machine's CPU to the functions.
RATE, BURST = 2, 3
FLOOD_THREADS = 3
FLOOD_PAUSE = 0.05
FLOOD_SECONDS = 4.0
USER_RETRIES_FOR = 10.0  # seconds a user's client keeps retrying a 429
STOP_WAIT_SECONDS = 15


@pytest.fixture(scope="module")
def stack() -> Iterator[StackProcess]:
    overrides = f"ApiThrottlingRateLimit={RATE} ApiThrottlingBurstLimit={BURST}"
    with StackProcess(["--parameter-overrides", overrides]) as running:
        yield running


def _bearer(stack: StackProcess, user: str) -> dict[str, str]:
    minted = stack.devstack("token", "--user", user, "--lifetime", "300")
    assert minted.returncode == 0, minted.stderr
    return {"Authorization": f"Bearer {minted.stdout.strip()}", "Content-Type": "application/json"}


def _flood(
    url: str, headers: dict[str, str], until: float, statuses: Counter[int], lock: threading.Lock
) -> None:
    while time.monotonic() < until:
        answer = http("POST", url, headers=headers, body={"projectId": DEMO_PROJECT}, timeout=15)
        with lock:
            statuses[answer.status] += 1
        time.sleep(FLOOD_PAUSE)


def _user_stop(url: str, headers: dict[str, str]) -> tuple[Any, int]:
    """The user's Stop, retried after a 429 as a client does; the answer and the 429s it met."""
    throttled, deadline = 0, time.monotonic() + USER_RETRIES_FOR
    while True:
        answer = http("POST", url, headers=headers, body={"projectId": DEMO_PROJECT}, timeout=15)
        if answer.status != 429 or time.monotonic() > deadline:
            return answer, throttled
        throttled += 1
        time.sleep(0.25)


def test_a_flood_gets_429_from_the_gateway_and_a_users_stop_is_still_served(stack):
    url = f"{stack.origin}{CANCEL_PATH}"
    # A valid session of someone else, sending Stops for a project that is not theirs, in a loop.
    attacker = _bearer(stack, "user_2flood000000000000000000")
    user = _bearer(stack, DEMO_USER)
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    # As many warm instances as the burst lets in at once (Lambda keeps them warm the same way):
    # the cold starts of this machine's local containers are not what this test measures.
    warm_up = [
        threading.Thread(
            target=http, args=("POST", url), kwargs={"headers": attacker, "body": {}, "timeout": 60}
        )
        for _ in range(BURST)
    ]
    for thread in warm_up:
        thread.start()
    for thread in warm_up:
        thread.join(timeout=60)
    time.sleep(BURST / RATE)  # the bucket refills
    started = time.monotonic()
    flood = [
        threading.Thread(target=_flood, args=(url, attacker, started + FLOOD_SECONDS, statuses, lock))
        for _ in range(FLOOD_THREADS)
    ]
    for thread in flood:
        thread.start()
    time.sleep(1.0)  # the flood has emptied the route's bucket
    answer, user_throttled = _user_stop(url, user)
    for thread in flood:
        thread.join(timeout=30)
    elapsed = time.monotonic() - started

    assert answer.status == 200, answer.body
    assert sorted(answer.body["messageIds"]) == PROCESSING
    # The flood was answered by the gateway: 429s, and only what the bucket let through reached
    # the function (404: not the attacker's project).
    assert set(statuses) <= {404, 429}, statuses
    assert statuses[429] > statuses[404]
    reached = statuses[404] + 1  # the user's Stop that was served took a token too
    assert reached <= BURST + RATE * elapsed + 1, (statuses, elapsed)
    throttled_lines = stack.output().count("-> 429 (route throttle)")
    assert throttled_lines == statuses[429] + user_throttled

    # API Gateway's own answer, as the API document describes it.
    answers = (
        http("POST", url, headers=attacker, body={"projectId": DEMO_PROJECT}) for _ in range(3 * BURST)
    )
    # The bucket refilled meanwhile: a few requests empty it again.
    throttled = next(a for a in answers if a.status == 429)
    assert throttled.body == {"message": "Too Many Requests"}
    document = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    response = document["paths"][CANCEL_PATH]["post"]["responses"]["429"]
    validate(throttled.body, response["content"]["application/json"]["schema"])

    # And the user's agents were stopped, the flood notwithstanding.
    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=stack.state["awsEndpoint"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    messages = http("GET", f"{stack.origin}/__devstack/messages?projectId={DEMO_PROJECT}").body["messages"]
    arns = [m["executionArn"] for m in messages if m["id"] in PROCESSING]
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while time.monotonic() < deadline:
        if all(sfn.describe_execution(executionArn=arn)["status"] == "ABORTED" for arn in arns):
            break
        time.sleep(0.25)
    assert all(sfn.describe_execution(executionArn=arn)["status"] == "ABORTED" for arn in arns)
