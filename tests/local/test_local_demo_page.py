"""The demo page in real headless Chromium (Debian's `chromium`, driven by Playwright): signed in
by the `__session` cookie, it shows each agent's answer growing, stops the AI with the seed page's
own `fetch` (no Authorization header) and shows the toast, the new statuses, the executions
ABORTED and each answer stopped mid-sentence, growing no more."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from devstack.constants import ROOT
from devstack.demo import DEMO_MESSAGES
from support.local_stack import StackProcess

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "artifacts"
PROCESSING = sorted(message_id for message_id, _, status in DEMO_MESSAGES if status == "processing")


def answer_of(page, message_id: str):
    return page.locator(f'[data-answer-of="{message_id}"] [data-answer]')


def words_of(page, message_id: str) -> str:
    """The answer the page shows for a message, once it shows one."""
    from playwright.sync_api import expect

    expect(answer_of(page, message_id)).not_to_be_empty(timeout=15_000)
    return answer_of(page, message_id).inner_text()


@pytest.fixture
def stack() -> Iterator[StackProcess]:
    with StackProcess() as running:
        yield running


@pytest.mark.browser
def test_stop_ai_from_the_demo_page(stack):
    # Imported here so that a machine without Playwright fails this test, not the whole run.
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            requests = []
            page.on(
                "request",
                lambda request: (
                    requests.append(request) if request.url.endswith("/api/messages/cancel") else None
                ),
            )
            page.goto(stack.origin + "/")
            expect(page.locator("body[data-ready=true]")).to_be_attached()
            cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
            assert "__session" in cookies
            for message_id in PROCESSING:
                row = page.locator(f'[data-message-id="{message_id}"]')
                expect(row.locator("[data-status]")).to_have_text("processing")
                expect(row.locator("[data-execution]")).to_have_text("agent RUNNING")
            assert page.locator("section.conversation").count() >= 2
            for message_id in PROCESSING:  # the agents stream: each answer grows
                shown = words_of(page, message_id)
                expect(answer_of(page, message_id)).not_to_have_text(shown, timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "demo-page-streaming.png"), full_page=True)

            page.get_by_role("button", name="Stop AI").click()

            expect(page.locator(".toast").filter(has_text="AI stopped")).to_be_visible()
            for message_id in PROCESSING:
                expect(page.locator(f'[data-message-id="{message_id}"] [data-status]')).to_have_text(
                    "cancelled"
                )
            stopped_after = {}
            for message_id in PROCESSING:
                stopped = page.locator(f'[data-answer-of="{message_id}"] [data-stopped]')
                # "mid-sentence" too, unless the Stop came right after a full stop
                expect(stopped).to_contain_text("stopped after")
                expect(page.locator(f'[data-message-id="{message_id}"] [data-execution]')).to_have_text(
                    "agent ABORTED", timeout=30_000
                )
            # A step sees the cancel within one read of its watch (a second) and may write the chunk
            # it had in hand: the promise is no word later than 2 s after the Stop.
            page.wait_for_timeout(2_000)
            for message_id in PROCESSING:
                stopped_after[message_id] = words_of(page, message_id)
            # Two seconds more: the page (refreshing twice a second) shows not one word more.
            page.wait_for_timeout(2_000)
            for message_id, shown in stopped_after.items():
                assert words_of(page, message_id) == shown
                count = int(
                    page.locator(f'[data-answer-of="{message_id}"] [data-stopped]').get_attribute(
                        "data-stopped"
                    )
                    or 0
                )
                assert len(shown.split()) == count
            page.screenshot(path=str(ARTIFACTS / "demo-page-stopped.png"), full_page=True)

            page.get_by_role("button", name="Stop AI").click()
            expect(page.locator(".toast").filter(has_text="No AI requests to cancel")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "demo-page-nothing-to-cancel.png"), full_page=True)

            assert len(requests) == 2
            for request in requests:
                headers = request.all_headers()
                assert "authorization" not in headers, "the page must send the cookie only"
                assert "__session=" in headers.get("cookie", "")
                assert headers.get("origin") == stack.origin
        finally:
            browser.close()
    print(f"browser test: {time.monotonic() - started:.1f} s")
