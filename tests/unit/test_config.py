"""Configuration: the contract's defaults, and errors that name what is missing."""

from __future__ import annotations

import pytest

from cancel_service.config import ConfigurationError, clerk_config, store_config


@pytest.fixture
def clerk_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("CLERK_JWKS_URL", "CLERK_AUTHORIZED_PARTIES", "CLERK_JWT_KEY", "CLERK_PUBLISHABLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLERK_ISSUER", "https://clerk.example.com")
    return monkeypatch


@pytest.mark.usefixtures("clerk_env")
def test_jwks_url_defaults_to_the_issuers_well_known_location():
    config = clerk_config()

    assert config.jwks_url == "https://clerk.example.com/.well-known/jwks.json"
    assert config.issuer == "https://clerk.example.com"
    assert config.authorized_parties == frozenset()
    assert config.jwt_key is None


def test_authorized_parties_are_a_comma_separated_list(clerk_env):
    clerk_env.setenv("CLERK_AUTHORIZED_PARTIES", " https://app.example.com, https://www.example.com ,")

    assert clerk_config().authorized_parties == {"https://app.example.com", "https://www.example.com"}


def test_a_jwt_key_with_escaped_newlines_becomes_pem(clerk_env):
    clerk_env.setenv("CLERK_JWT_KEY", "-----BEGIN PUBLIC KEY-----\\nMIIB\\n-----END PUBLIC KEY-----")

    assert clerk_config().jwt_key == "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"


@pytest.mark.parametrize("missing", ["MESSAGES_TABLE", "PROJECTS_TABLE", "EVENT_BUS_NAME"])
def test_a_missing_table_or_bus_is_named(monkeypatch, missing):
    for name in ("MESSAGES_TABLE", "PROJECTS_TABLE", "EVENT_BUS_NAME"):
        monkeypatch.setenv(name, "set")
    monkeypatch.setenv(missing, "  ")

    with pytest.raises(ConfigurationError, match=missing):
        store_config()


def test_a_missing_issuer_is_named(clerk_env):
    clerk_env.delenv("CLERK_ISSUER")

    with pytest.raises(ConfigurationError, match="CLERK_ISSUER"):
        clerk_config()
