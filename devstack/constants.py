"""The facts every part of the local stack shares, written once: where the checkout is, the
account, region and stack name the local resources live under, and the API's one path."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
STACK_NAME = "cancel-service-local"
# moto accepts any credentials; giving these keeps a developer's real ones out of every call.
LOCAL_CREDENTIAL = "testing"
CANCEL_PATH = "/api/messages/cancel"
