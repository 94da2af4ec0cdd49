"""NATS settings from the environment: servers and exactly one way of signing in."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferedge.transport.settings import DEFAULT_URL, NatsSettings, SettingsError


def test_defaults_to_a_local_server_without_credentials() -> None:
    settings = NatsSettings.from_env({})
    assert settings.servers == (DEFAULT_URL,)
    assert settings.connect_options() == {"servers": [DEFAULT_URL]}


def test_an_explicit_url_wins_over_the_environment() -> None:
    env = {"INFEREDGE_NATS_URL": "nats://env:4222"}
    assert NatsSettings.from_env(env, url="nats://given:4222").servers == ("nats://given:4222",)
    assert NatsSettings.from_env(env).servers == ("nats://env:4222",)


def test_several_servers_separated_by_commas() -> None:
    settings = NatsSettings.from_env({"INFEREDGE_NATS_URL": "nats://a:4222, tls://b:4222"})
    assert settings.servers == ("nats://a:4222", "tls://b:4222")


def test_user_and_password_reach_nats_py_but_not_repr() -> None:
    env = {"INFEREDGE_NATS_USER": "edge", "INFEREDGE_NATS_PASSWORD": "s3cret"}
    settings = NatsSettings.from_env(env)
    assert settings.connect_options()["user"] == "edge"
    assert settings.connect_options()["password"] == "s3cret"
    assert "s3cret" not in repr(settings)


def test_a_token_reaches_nats_py_but_not_repr() -> None:
    settings = NatsSettings.from_env({"INFEREDGE_NATS_TOKEN": "t0ken"})
    assert settings.connect_options()["token"] == "t0ken"
    assert "t0ken" not in repr(settings)


def test_a_creds_file_is_passed_by_path(tmp_path: Path) -> None:
    creds = tmp_path / "edge.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\n")
    settings = NatsSettings.from_env({"INFEREDGE_NATS_CREDS": str(creds)})
    assert settings.connect_options()["user_credentials"] == str(creds)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"INFEREDGE_NATS_URL": "http://x:4222"}, "INFEREDGE_NATS_URL: 'http://x:4222'"),
        ({"INFEREDGE_NATS_URL": "nats://x:port"}, "INFEREDGE_NATS_URL: 'nats://x:port'"),
        ({"INFEREDGE_NATS_URL": "localhost:4222"}, "expected nats://HOST:PORT"),
        ({"INFEREDGE_NATS_URL": "nats://u:pw@x:4222"}, "not in the URL"),
        ({"INFEREDGE_NATS_USER": "u"}, "set both INFEREDGE_NATS_USER and INFEREDGE_NATS_PASSWORD"),
        ({"INFEREDGE_NATS_PASSWORD": "p"}, "set both"),
        ({"INFEREDGE_NATS_CREDS": "/no/such.creds"}, "INFEREDGE_NATS_CREDS: /no/such.creds is"),
        (
            {
                "INFEREDGE_NATS_TOKEN": "t",
                "INFEREDGE_NATS_USER": "u",
                "INFEREDGE_NATS_PASSWORD": "p",
            },
            "set only one of",
        ),
    ],
)
def test_bad_settings_are_named_in_one_line(env: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        NatsSettings.from_env(env)
    assert problem in str(caught.value)
    assert "pw" not in str(caught.value)


def test_an_inbox_prefix_reaches_nats_py() -> None:
    settings = NatsSettings.from_env({"INFEREDGE_NATS_INBOX_PREFIX": "_INBOX.inferedge.edge"})
    assert settings.connect_options()["inbox_prefix"] == "_INBOX.inferedge.edge"


@pytest.mark.parametrize("prefix", ["_INBOX.>", "a.*.b", "a..b", ".a", "a b", "a."])
def test_a_bad_inbox_prefix_is_named(prefix: str) -> None:
    with pytest.raises(SettingsError, match="INFEREDGE_NATS_INBOX_PREFIX"):
        NatsSettings(inbox_prefix=prefix)


def test_how_a_client_signs_in_is_described_without_its_secret() -> None:
    assert "without credentials" in NatsSettings().signs_in
    described = NatsSettings(user="edge", password="s3cret").signs_in
    assert "'edge'" in described
    assert "s3cret" not in described
    assert "s3cret" not in NatsSettings(token="s3cret").signs_in
