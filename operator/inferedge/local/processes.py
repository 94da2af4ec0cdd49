"""Partition servers as child processes: started, awaited until they serve, always stopped.

`inferedge run` starts `inferedge serve edge|cloud` exactly as a pod would, so what it measures
is what the operator deploys. A server is ready when it prints its `serving ... on http://...`
line; its whole output goes to a log file under the run directory. Every server is stopped
(SIGTERM, then SIGKILL after a bound) when the `with` block ends, by error or Ctrl-C included,
so no process outlives the run. Servers run in their own process groups, so a Ctrl-C in the
terminal reaches the runner alone and the runner decides the order of shutdown.

A server signs in to NATS only as the runner says: INFEREDGE_NATS_* variables of the caller's
own environment (a token, a credentials file, another user) are not passed on, so they can
neither override nor contradict the identity the runner gives it in `env`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from inferedge.core.errors import InferedgeError

_SERVING = re.compile(r"^serving (edge|cloud) of plan (\w+) on (http://\S+)")
_DISPATCHING = re.compile(r"^serving (dispatcher) of ([-a-z0-9]+) on (http://\S+)")
_NATS_ENV_PREFIX = "INFEREDGE_NATS_"


class ServerProcessError(InferedgeError):
    """A partition server did not start, or died."""


@dataclass(frozen=True)
class Started:
    """What a server announced once it could serve."""

    role: str
    plan_hash: str
    """The plan an edge or cloud serves; a dispatcher's pipeline."""
    url: str


class ServerProcess:
    """One `inferedge serve` child process (`inferedge dispatch` for the role "dispatcher");
    a context manager that always stops it."""

    def __init__(
        self,
        role: str,
        args: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = 120.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self.role = role
        self.log_path = log_path
        command = ["dispatch"] if role == "dispatcher" else ["serve", role]
        self._args = [sys.executable, "-m", "inferedge", *command, *args]
        self._env = child_env(os.environ, env or {})
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._process: subprocess.Popen[str] | None = None
        self._announced = threading.Event()
        self._started: Started | None = None
        self._pump: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def started(self) -> Started:
        """What the server announced; ServerProcessError before it has."""
        if self._started is None:
            raise ServerProcessError(f"the {self.role} server has not started")
        return self._started

    def start(self) -> Started:
        """Start the server and wait for its `serving` line (or its death, or the timeout)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("w", encoding="utf-8")
        try:
            self._process = subprocess.Popen(
                self._args,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env,
                text=True,
                bufsize=1,
                # Its own process group: Ctrl-C reaches only `inferedge run`, which stops the
                # servers itself, in order, instead of them dying under its feet.
                start_new_session=True,
            )
        except OSError as exc:
            log.close()
            raise ServerProcessError(f"cannot start the {self.role} server: {exc}") from exc
        assert self._process.stdout is not None
        self._pump = threading.Thread(
            target=self._copy_output,
            args=(self._process.stdout, log),
            name=f"inferedge-{self.role}-log",
            daemon=True,
        )
        self._pump.start()
        if not self._announced.wait(self._start_timeout_s) or self._started is None:
            code = self._process.poll()
            self.stop()
            state = (
                f"exited with code {code}"
                if code is not None
                else f"did not serve within {self._start_timeout_s:g} s"
            )
            raise ServerProcessError(
                f"the {self.role} server {state}: {self._last_line()} (log: {self.log_path})"
            )
        return self._started

    def alive(self) -> bool:
        """Whether the child still runs."""
        return self._process is not None and self._process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after the bound; returns the exit code (None if never started)."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._pump is not None:
            self._pump.join(self._stop_timeout_s)
        return process.returncode

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _copy_output(self, stream: IO[str], log: IO[str]) -> None:
        with log:
            for line in stream:
                log.write(line)
                log.flush()
                match = _SERVING.match(line.strip()) or _DISPATCHING.match(line.strip())
                if self._started is None and match:
                    self._started = Started(*match.groups())
                    self._announced.set()
        # The stream ended: the process is gone; wake a start() still waiting.
        self._announced.set()

    def _last_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = [ln for ln in self.log_path.read_text(encoding="utf-8").splitlines() if ln]
            if lines:
                return lines[-1]
        return "no output"


def child_env(inherited: Mapping[str, str], given: Mapping[str, str]) -> dict[str, str]:
    """A server's environment: the inherited one without its NATS settings, then `given`."""
    kept = {k: v for k, v in inherited.items() if not k.startswith(_NATS_ENV_PREFIX)}
    return {**kept, **given}


@contextlib.contextmanager
def running(servers: Sequence[ServerProcess]) -> Iterator[list[Started]]:
    """Start `servers` in order; stop all of them (in reverse) when the block ends."""
    with contextlib.ExitStack() as stack:
        started = []
        for server in servers:
            stack.callback(server.stop)
            started.append(server.start())
        yield started
