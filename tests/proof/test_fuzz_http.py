"""The HTTP function against generated API Gateway events: whatever arrives, never a 500."""

from __future__ import annotations

import pytest

from conftest import PROJECT, Store
from devstack.apigw import http_api_event
from http_client import CANCEL_PATH, invoke

pytestmark = pytest.mark.proof


def test_base64_flagged_body_with_non_ascii_text_is_400_not_500(store: Store, mint, lambda_context):
    store.put_project()
    store.put_message("m1")
    event = http_api_event(
        "POST",
        CANCEL_PATH,
        headers={"content-type": "application/json", "authorization": f"Bearer {mint()}"},
        body='{"projectId":"é"}',
    )
    event["isBase64Encoded"] = True

    answer = invoke(event, lambda_context)

    assert answer.status == 400
    assert answer.body["error"]["code"] == "invalid_request"
    assert store.status("m1") == "processing"


def test_body_with_a_lone_surrogate_is_400_not_500(store: Store, mint, lambda_context):
    store.put_project()
    store.put_message("m1")
    body = '{"projectId":"' + PROJECT + '","note":"\ud800"}'
    event = http_api_event(
        "POST",
        CANCEL_PATH,
        headers={"content-type": "application/json", "authorization": f"Bearer {mint()}"},
        body=body,
    )

    answer = invoke(event, lambda_context)

    assert answer.status == 400
    assert answer.body["error"]["code"] == "invalid_request"
    assert store.status("m1") == "processing"
