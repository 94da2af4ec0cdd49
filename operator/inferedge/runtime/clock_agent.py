"""The clock agent (`inferedge agent`): the one privileged process on an edge node that sets the
CPU and GPU clocks, on behalf of the non-root inference pods of that node.

It listens on a Unix socket in a hostPath directory only pods of its node can mount, and answers
only peers whose uid (SO_PEERCRED) is allowed. One JSON object per line each way, at most
`MAX_LINE` bytes: `{"pipeline": "<namespace>/<name>", "cpu_khz": 1420800, "gpu_khz": null}` or
`{"pipeline": ..., "release": true}`, answered by a `ClockReply` or `{"error": "<one line>"}`.
The rules (bounds, snapping, the highest live wish per clock, leases) are the pure functions of
`inferedge.core.clock_wishes`. Nothing in a request is executed or loaded: it is three validated
fields. On SIGTERM/SIGINT the default clocks come back.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import socket
import stat
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inferedge.api.base import DNS_LABEL
from inferedge.core import clock_wishes
from inferedge.core.clock_wishes import KINDS, ClockKind, Held, Wish
from inferedge.core.errors import InferedgeError, describe_validation_error, one_line

log = logging.getLogger(__name__)

DEFAULT_SOCKET: Final = Path("/run/inferedge/clocks.sock")
# Longest request line (bytes); a longer one gets an error reply and its connection closes.
MAX_LINE: Final = 4096
MAX_CONNECTIONS: Final = 64
MAX_WISHES_PER_CONNECTION: Final = 16
# Far above any clock, far below an integer big enough to cost the agent time.
MAX_KHZ: Final = 100_000_000
_LABEL: Final = DNS_LABEL.removeprefix("^").removesuffix("$")

PipelineName = Annotated[
    str,
    Field(
        pattern=f"^{_LABEL}/{_LABEL}$",
        max_length=127,
        description="The asking pipeline as <namespace>/<name> (DNS-1123 labels).",
    ),
]


class ClockDriver(Protocol):
    """What the agent needs of the clock drivers (`inferedge.runtime.clocks.Clocks`)."""

    def table(self, kind: ClockKind) -> tuple[int, ...]:
        """The frequencies (kHz, ascending) of `kind`; () when the node has no such clock."""

    def pin(self, kind: ClockKind, khz: int) -> dict[str, int]:
        """Pin every domain of `kind` to its highest step <= khz; InferedgeError if refused."""

    def restore(self) -> None:
        """Write the defaults back; InferedgeError naming what failed."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class WishRequest(_Message):
    """A pipeline's wish for the node's clocks; it also renews the pipeline's lease."""

    pipeline: PipelineName
    cpu_khz: int | None = Field(
        default=None, ge=1, le=MAX_KHZ, description="CPU clock wished for (kHz); null: no wish."
    )
    gpu_khz: int | None = Field(
        default=None, ge=1, le=MAX_KHZ, description="GPU clock wished for (kHz); null: no wish."
    )


class ReleaseRequest(_Message):
    """The pipeline no longer wishes anything: its wishes are forgotten at once."""

    pipeline: PipelineName
    release: Literal[True] = Field(description="Always true.")


class ClockReply(_Message):
    """What the agent granted one pipeline and what the node's clocks are now."""

    pipeline: PipelineName
    clocks: dict[ClockKind, int | None] = Field(
        description="The node's clocks now, per kind (kHz); null: the defaults (the governor's)."
    )
    granted: dict[ClockKind, int | None] = Field(
        description="This pipeline's wish after the bounds and the table (kHz); null: none."
    )
    clamped: bool = Field(description="A wish lay outside the admin's bounds and was moved in.")
    steps: dict[ClockKind, list[int]] = Field(
        description="Per kind, the clocks a wish can be granted (kHz, ascending): the node's "
        "table inside the admin's bounds. A tuner searches these."
    )


class ErrorReply(_Message):
    """A request the agent could not serve."""

    error: str = Field(description="What was wrong, on one line.")


class RequestError(InferedgeError):
    """A request line that is not a valid request; the message names the field."""


def parse_request(line: bytes) -> WishRequest | ReleaseRequest:
    """One request line, validated field by field; RequestError (one line) otherwise."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        raise RequestError("request: expected one JSON object per line") from None
    if not isinstance(data, dict):
        raise RequestError(f"request: expected a JSON object, got {type(data).__name__}")
    model: type[WishRequest | ReleaseRequest] = ReleaseRequest if "release" in data else WishRequest
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestError(describe_validation_error(exc, "request")) from None


def _error(message: str) -> bytes:
    return ErrorReply(error=" ".join(message.split())).model_dump_json().encode()


@dataclass(frozen=True)
class Bounds:
    """The admin's bounds on one clock kind (kHz); `None`: the table's end."""

    min_khz: int | None = None
    max_khz: int | None = None


@dataclass(frozen=True)
class AgentSettings:
    """How the agent serves; the CLI builds it from flags (the chart's values)."""

    allowed_uids: frozenset[int]
    """Peer uids that may ask (the runtime's, 65532, in the chart); others are refused."""
    socket_path: Path = DEFAULT_SOCKET
    bounds: Mapping[ClockKind, Bounds] = field(default_factory=dict)
    lease_s: float = 120.0
    """A wish not renewed by a request within this time is forgotten."""


def _allowed_steps(
    clocks: ClockDriver, bounds: Mapping[ClockKind, Bounds]
) -> dict[ClockKind, tuple[int, ...]]:
    steps: dict[ClockKind, tuple[int, ...]] = {}
    for kind in KINDS:
        table, bound = clocks.table(kind), bounds.get(kind, Bounds())
        steps[kind] = clock_wishes.allowed_steps(table, bound.min_khz, bound.max_khz)
        if table and not steps[kind]:
            raise InferedgeError(
                f"--{kind}-min-khz/--{kind}-max-khz: no {kind.upper()} clock step lies between "
                f"{bound.min_khz or 0} and {bound.max_khz or 'the top'} kHz (this node has "
                f"{table[0]}..{table[-1]} kHz)"
            )
    return steps


Holder = tuple[str, int]
"""A wish's holder: the pipeline and the number of the connection it came on."""


class ClockAgent:
    """The agent's decisions and writes, independent of the socket it is reached through."""

    def __init__(
        self,
        clocks: ClockDriver,
        settings: AgentSettings,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        """Check the bounds against the node's tables; InferedgeError when they leave no step."""
        if settings.lease_s <= 0:
            raise InferedgeError(f"--lease-s: expected a positive number, got {settings.lease_s}")
        self._clocks = clocks
        self._steps = _allowed_steps(clocks, settings.bounds)
        self._lease_s = settings.lease_s
        self._now = now
        self._book: dict[Holder, Held] = {}
        self._applied: dict[ClockKind, int | None] | None = None  # None: unknown
        self._stopped = False

    @property
    def steps(self) -> Mapping[ClockKind, tuple[int, ...]]:
        """Per kind, the clock steps a wish can be granted (the table inside the bounds)."""
        return self._steps

    def start(self) -> None:
        """Restore the defaults, so serving starts from a known state (a crashed agent may have
        left clocks pinned); InferedgeError when /sys refuses."""
        self._clocks.restore()
        self._applied = dict.fromkeys(KINDS)

    def handle(self, connection: int, line: bytes) -> bytes:
        """Answer one request line from `connection`: a ClockReply or an ErrorReply (JSON).

        A wish whose write the drivers refuse is still held (the error reply says the clocks
        were not set); the next change of the clocks writes every kind again.
        """
        try:
            request = parse_request(line)
        except RequestError as exc:
            return _error(str(exc))
        key = (request.pipeline, connection)
        self._book = clock_wishes.expire(self._book, self._now())
        if isinstance(request, ReleaseRequest):
            self._book = clock_wishes.drop(self._book, {key})
            granted, clamped = Wish(), False
        else:
            held = sum(1 for _, number in self._book if number == connection)
            if key not in self._book and held >= MAX_WISHES_PER_CONNECTION:
                return _error(
                    f"request: one connection holds at most {MAX_WISHES_PER_CONNECTION} "
                    "pipelines' wishes"
                )
            wish = Wish(request.cpu_khz, request.gpu_khz)
            granted, clamped = clock_wishes.grant(wish, self._steps)
            self._book = clock_wishes.hold(self._book, key, granted, self._now(), self._lease_s)
        failure = self._apply()
        if failure is not None:
            return _error(f"clocks not set: {failure}")
        granted_khz = {kind: granted.of(kind) for kind in KINDS}
        applied = dict(self._applied or {})
        reply = ClockReply(
            pipeline=request.pipeline, clocks=applied, granted=granted_khz, clamped=clamped,
            steps={kind: list(self._steps.get(kind, ())) for kind in KINDS},
        )  # fmt: skip
        return reply.model_dump_json().encode()

    def disconnect(self, connection: int) -> None:
        """Forget every wish that came on `connection` (its pod is gone)."""
        self._book = {key: held for key, held in self._book.items() if key[1] != connection}
        self._apply()

    def sweep(self) -> None:
        """Forget the wishes whose lease ran out (a vanished pod cannot pin clocks forever)."""
        self._book = clock_wishes.expire(self._book, self._now())
        self._apply()

    def stop(self) -> None:
        """Stop setting clocks and restore the defaults; InferedgeError when that fails."""
        self._stopped = True
        self._book = {}
        self._applied = None
        self._clocks.restore()
        self._applied = dict.fromkeys(KINDS)

    def _apply(self) -> str | None:
        """Bring the clocks to the book's targets; the refusal (logged, one line) if any."""
        wanted = clock_wishes.targets(self._book)
        if self._stopped or wanted == self._applied:
            return None
        applied, self._applied = self._applied, None  # unknown until every write went through
        try:
            # The drivers restore every kind at once: a kind going back to its defaults takes
            # the others with it, and those are pinned again just below.
            if applied is None or any(wanted[k] is None and applied[k] is not None for k in KINDS):
                self._clocks.restore()
                applied = dict.fromkeys(KINDS)
            for kind, khz in wanted.items():
                if khz is not None and khz != applied[kind]:
                    self._clocks.pin(kind, khz)
        except (InferedgeError, OSError) as exc:
            failure = one_line(exc)
            log.error("clocks not set: %s", failure)
            return failure
        self._applied = wanted
        log.info(
            "clocks now %s (%d wishes held)",
            ", ".join(f"{k} {v} kHz" if v else f"{k} default" for k, v in wanted.items()),
            len(self._book),
        )
        return None


def peer_credentials(writer: asyncio.StreamWriter) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket (SO_PEERCRED)."""
    sock = writer.get_extra_info("socket")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _claim_socket(path: Path) -> None:
    """Make room for the socket: remove a stale one, refuse to replace anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    if not stat.S_ISSOCK(mode):
        raise InferedgeError(f"--socket {path}: exists and is not a socket; not replacing it")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # nobody listens: left behind by an agent that was killed
            return
    raise InferedgeError(f"--socket {path}: another clock agent is serving it")


async def _send(writer: asyncio.StreamWriter, reply: bytes) -> None:
    writer.write(reply + b"\n")
    await writer.drain()


async def _session(
    agent: ClockAgent,
    number: int,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    allowed_uids: frozenset[int],
    already_open: int,
) -> None:
    """One connection: the peer check, then its requests; its wishes end with it."""
    try:
        pid, uid, _ = peer_credentials(writer)
        if uid not in allowed_uids:
            log.warning("refused a connection from uid %d (pid %d): not an allowed uid", uid, pid)
            await _send(writer, _error(f"uid {uid} may not set clocks on this node"))
            return
        if already_open >= MAX_CONNECTIONS:
            log.warning("refused a connection from pid %d: %d already open", pid, already_open)
            await _send(writer, _error(f"at most {MAX_CONNECTIONS} connections at once"))
            return
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # over MAX_LINE: its rest could not be told from a next request
                await _send(writer, _error(f"request: longer than {MAX_LINE} bytes"))
                return
            if not line:
                return
            await _send(writer, agent.handle(number, line))
    except ConnectionError:
        pass  # the pod went away mid-reply: its wishes are forgotten below
    finally:
        agent.disconnect(number)
        writer.close()


async def _sweep(agent: ClockAgent, period_s: float) -> None:
    while True:
        await asyncio.sleep(period_s)
        agent.sweep()


async def serve_agent(
    agent: ClockAgent,
    settings: AgentSettings,
    stop: asyncio.Event,
    announce: Callable[[str], None],
) -> None:
    """Serve on `settings.socket_path` until `stop` is set, then restore the default clocks.

    Raises InferedgeError when the clocks cannot be restored (at start or at the end).
    """
    path = settings.socket_path
    _claim_socket(path)
    agent.start()
    numbers = itertools.count(1)
    sessions: set[asyncio.Task[None]] = set()

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        uids, already_open = settings.allowed_uids, len(sessions)
        session = _session(
            agent, next(numbers), reader, writer, allowed_uids=uids, already_open=already_open
        )
        task = asyncio.create_task(session)
        sessions.add(task)
        task.add_done_callback(sessions.discard)

    server = await asyncio.start_unix_server(on_connect, path=str(path), limit=MAX_LINE)
    # Who may ask is decided by the peer's uid, so any local user may reach the check.
    os.chmod(path, 0o666)
    sweeper = asyncio.create_task(_sweep(agent, settings.lease_s / 4))
    clocks = ", ".join(f"{kind} {_describe(steps)}" for kind, steps in agent.steps.items())
    uids = ",".join(map(str, sorted(settings.allowed_uids)))
    announce(f"clock agent on {path}: {clocks}; uids {uids}; lease {settings.lease_s:g} s")
    try:
        await stop.wait()
    finally:
        server.close()
        sweeper.cancel()
        try:
            agent.stop()
        finally:
            for task in sessions:
                task.cancel()
            await asyncio.gather(sweeper, *sessions, return_exceptions=True)
            await server.wait_closed()
            path.unlink(missing_ok=True)


def _describe(steps: tuple[int, ...]) -> str:
    return f"{steps[0]}..{steps[-1]} kHz ({len(steps)} steps)" if steps else "none"


async def run_agent(
    agent: ClockAgent, settings: AgentSettings, announce: Callable[[str], None]
) -> None:
    """`serve_agent` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve_agent(agent, settings, stop, announce)
