"""The clock agent over a real Unix socket and asyncio server, on in-memory clocks: the merge of
several pipelines' wishes, leases, peer uids, malformed lines, refused writes and the exit."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from inferedge.core.clock_wishes import ClockKind
from inferedge.core.errors import InferedgeError
from inferedge.runtime.clock_agent import (
    MAX_CONNECTIONS,
    MAX_LINE,
    MAX_WISHES_PER_CONNECTION,
    AgentSettings,
    Bounds,
    ClockAgent,
    ClockDriver,
    ClockReply,
    parse_request,
    serve_agent,
)
from inferedge.runtime.clock_client import ClockAgentClient, ClockAgentError
from inferedge.runtime.clocks import Clocks

CPU = (100_000, 200_000, 300_000, 400_000, 500_000)
GPU = (114_750, 522_750, 1_109_250)
ME = frozenset({os.getuid()})
WAIT_S = 10  # a bound on waiting for the agent, never a pause


class Refused(InferedgeError):
    """What the fake raises for a refused sysfs write, as the drivers' ClockError does."""


class FakeClocks:
    """Clocks in memory: `pinned` per kind (None: the defaults), every write in `writes`."""

    def __init__(self, tables: dict[ClockKind, tuple[int, ...]] | None = None) -> None:
        self.tables = tables if tables is not None else {"cpu": CPU, "gpu": GPU}
        self.pinned: dict[ClockKind, int | None] = {"cpu": 400_000, "gpu": None}  # left over
        self.writes: list[tuple[str, ...]] = []
        self.refuse_pin = False
        self.refuse_restore = False
        self._changed = asyncio.Event()

    def table(self, kind: ClockKind) -> tuple[int, ...]:
        return self.tables.get(kind, ())

    def pin(self, kind: ClockKind, khz: int) -> dict[str, int]:
        if self.refuse_pin:
            raise Refused(f"cannot write {khz} to /sys/{kind}/max: Permission denied")
        self.pinned[kind] = khz
        self._wrote("pin", kind, str(khz))
        return {f"{kind}0": khz}

    def restore(self) -> None:
        if self.refuse_restore:
            raise Refused("restore failed on 1 domain(s): policy0: Device or resource busy")
        self.pinned = {"cpu": None, "gpu": None}
        self._wrote("restore")

    def _wrote(self, *write: str) -> None:
        self.writes.append(write)
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until a write makes `predicate` true."""
        async with asyncio.timeout(WAIT_S):
            while not predicate():
                await self._changed.wait()


def settings(path: Path, **changes: Any) -> AgentSettings:
    return AgentSettings(**{"allowed_uids": ME, "socket_path": path, **changes})


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "clocks.sock"


@asynccontextmanager
async def running(
    clocks: FakeClocks, config: AgentSettings, agent: ClockAgent | None = None
) -> AsyncIterator[list[str]]:
    """The agent serving `clocks` on a real socket; stopped (and restored) on the way out."""
    stop, ready, lines = asyncio.Event(), asyncio.Event(), []

    def announce(line: str) -> None:
        lines.append(line)
        ready.set()

    task = asyncio.create_task(
        serve_agent(agent or ClockAgent(clocks, config), config, stop, announce)
    )
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiting}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if task.done():
        task.result()  # it failed to start: its error is the test's
    if not ready.is_set():
        task.cancel()
        pytest.fail(f"the agent did not start within {WAIT_S} s")
    try:
        yield lines
    finally:
        stop.set()
        await task


async def exchange(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    """Send raw request lines on one connection; the decoded replies, one per line."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    replies = []
    try:
        for line in lines:
            writer.write(line + b"\n")
            await writer.drain()
            replies.append(json.loads(await reader.readline()))
    finally:
        writer.close()
    return replies


def test_the_real_drivers_satisfy_the_agents_protocol() -> None:
    driver: ClockDriver = Clocks(())
    assert driver.table("cpu") == ()


@pytest.mark.asyncio
async def test_a_wish_is_clamped_snapped_pinned_and_answered(sock: Path) -> None:
    clocks = FakeClocks()
    config = settings(sock, bounds={"cpu": Bounds(150_000, 450_000)})
    async with running(clocks, config) as announced, ClockAgentClient(sock) as client:
        assert clocks.writes == [("restore",)], "serving starts from the defaults"
        assert str(sock) in announced[0]
        assert "cpu 200000..400000 kHz (3 steps)" in announced[0]
        reply = await client.request("ns/edge", cpu_khz=350_000, gpu_khz=600_000)
        assert reply == ClockReply(
            pipeline="ns/edge",
            clocks={"cpu": 300_000, "gpu": 522_750},
            granted={"cpu": 300_000, "gpu": 522_750},
            clamped=False,
            # the tables a tuner searches: the CPU's inside the admin's bounds
            steps={"cpu": [200_000, 300_000, 400_000], "gpu": list(GPU)},
        )
        assert clocks.pinned == {"cpu": 300_000, "gpu": 522_750}
        above = await client.request("ns/edge", cpu_khz=500_000)
        assert (above.granted["cpu"], above.clamped) == (400_000, True)
        below = await client.request("ns/edge", cpu_khz=1)
        assert (below.granted["cpu"], below.clamped) == (200_000, True)
        assert below.clocks == {"cpu": 200_000, "gpu": None}, "no GPU wish: GPU back to defaults"
        assert clocks.pinned == {"cpu": 200_000, "gpu": None}
    assert clocks.pinned == {"cpu": None, "gpu": None}
    assert clocks.writes[-1] == ("restore",)
    assert not sock.exists()


@pytest.mark.asyncio
async def test_the_highest_wish_of_the_live_pipelines_wins(sock: Path) -> None:
    clocks = FakeClocks()
    async with running(clocks, settings(sock)):
        fast, slow = ClockAgentClient(sock), ClockAgentClient(sock)
        await fast.request("ns/fast", cpu_khz=500_000, gpu_khz=GPU[0])
        reply = await slow.request("ns/slow", cpu_khz=100_000, gpu_khz=GPU[2])
        assert reply.granted == {"cpu": 100_000, "gpu": GPU[2]}
        assert reply.clocks == {"cpu": 500_000, "gpu": GPU[2]}, "nobody slows another down"
        await fast.close()  # the fast pod died: its wish goes with its connection
        await clocks.until(lambda: clocks.pinned["cpu"] == 100_000)
        assert clocks.pinned == {"cpu": 100_000, "gpu": GPU[2]}
        released = await slow.release("ns/slow")
        assert released.clocks == {"cpu": None, "gpu": None}
        assert released.granted == {"cpu": None, "gpu": None}
        assert clocks.pinned == {"cpu": None, "gpu": None}
        await slow.close()


@pytest.mark.asyncio
async def test_two_pods_of_one_pipeline_hold_their_own_wishes(sock: Path) -> None:
    clocks = FakeClocks()
    async with running(clocks, settings(sock)):
        first, second = ClockAgentClient(sock), ClockAgentClient(sock)
        await first.request("ns/edge", cpu_khz=300_000)
        await second.request("ns/edge", cpu_khz=200_000)
        assert clocks.pinned["cpu"] == 300_000
        await first.release("ns/edge")
        assert clocks.pinned["cpu"] == 200_000, "one pod's release leaves the other's wish"
        await first.close()
        await second.close()
        await clocks.until(lambda: clocks.pinned["cpu"] is None)


def test_a_lease_ends_a_wish_unless_a_request_renews_it(sock: Path) -> None:
    now = [0.0]
    clocks = FakeClocks()
    agent = ClockAgent(clocks, settings(sock, lease_s=10), now=lambda: now[0])
    agent.start()
    agent.handle(1, b'{"pipeline": "ns/a", "cpu_khz": 300000}')
    agent.handle(2, b'{"pipeline": "ns/b", "cpu_khz": 200000}')
    now[0] = 6.0
    agent.handle(2, b'{"pipeline": "ns/b", "cpu_khz": 200000}')  # renewed until 16
    now[0] = 10.0
    agent.sweep()
    assert clocks.pinned["cpu"] == 200_000, "ns/a's lease ran out, ns/b's was renewed"
    now[0] = 16.0
    agent.sweep()
    assert clocks.pinned["cpu"] is None


@pytest.mark.asyncio
async def test_the_server_sweeps_expired_leases_by_itself(sock: Path) -> None:
    clocks = FakeClocks()
    async with running(clocks, settings(sock, lease_s=0.05)), ClockAgentClient(sock) as client:
        assert (await client.request("ns/a", cpu_khz=300_000)).clocks["cpu"] == 300_000
        await clocks.until(lambda: clocks.pinned["cpu"] is None)


@pytest.mark.asyncio
async def test_a_peer_whose_uid_is_not_allowed_is_refused_and_logged(
    sock: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clocks = FakeClocks()
    config = settings(sock, allowed_uids=frozenset({os.getuid() + 1}))
    with caplog.at_level(logging.WARNING, logger="inferedge.runtime.clock_agent"):
        async with running(clocks, config), ClockAgentClient(sock) as client:
            with pytest.raises(ClockAgentError, match=f"refused: uid {os.getuid()} may not"):
                await client.request("ns/a", cpu_khz=300_000)
            assert clocks.writes == [("restore",)]
    assert f"refused a connection from uid {os.getuid()}" in caplog.text


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"not json", "expected one JSON object per line"),
        (b"", "expected one JSON object per line"),
        (b"[1, 2]", "expected a JSON object, got list"),
        # too deep for the JSON parser, or a list where the recursion limit was raised (other
        # libraries in the same process raise it): a refusal either way
        (b"[" * 2000 + b"]" * 2000, "request: expected "),
        (b'{"pipeline": "ns/a", "cpu_khz": "300000"}', "request: cpu_khz: "),
        (b'{"pipeline": "ns/a", "cpu_khz": 3.5}', "request: cpu_khz: "),
        (b'{"pipeline": "ns/a", "cpu_khz": true}', "request: cpu_khz: "),
        (b'{"pipeline": "ns/a", "gpu_khz": -5}', "request: gpu_khz: "),
        (b'{"pipeline": "ns/a", "gpu_khz": 10000000000000}', "request: gpu_khz: "),
        (b'{"pipeline": "Not A Pipeline", "cpu_khz": 1}', "request: pipeline: "),
        (b'{"pipeline": "a", "cpu_khz": 1}', "request: pipeline: "),
        (b'{"cpu_khz": 1}', "request: pipeline: Field required"),
        (b'{"pipeline": "ns/a", "cpu_khz": 1, "run": "rm -rf /"}', "request: run: Extra inputs"),
        (b'{"pipeline": "ns/a", "release": false}', "request: release: "),
        (b'{"pipeline": "ns/a", "release": true, "cpu_khz": 1}', "request: cpu_khz: "),
    ],
)
@pytest.mark.asyncio
async def test_malformed_lines_get_an_error_naming_the_field_and_serving_goes_on(
    sock: Path, line: bytes, fragment: str
) -> None:
    clocks = FakeClocks()
    async with running(clocks, settings(sock)):
        bad, good = await exchange(sock, line, b'{"pipeline": "ns/a", "cpu_khz": 300000}')
        assert list(bad) == ["error"]
        assert fragment in bad["error"]
        assert "\n" not in bad["error"]
        assert good["clocks"]["cpu"] == 300_000, "the same connection is still served"


def test_parse_request_tells_a_wish_from_a_release() -> None:
    wish = parse_request(b'{"pipeline": "ns/a", "gpu_khz": 5}')
    assert (wish.pipeline, getattr(wish, "gpu_khz", None)) == ("ns/a", 5)
    assert getattr(parse_request(b'{"pipeline": "ns/a", "release": true}'), "release", None)


@pytest.mark.asyncio
async def test_a_line_over_the_cap_is_refused_and_only_its_connection_closes(sock: Path) -> None:
    clocks = FakeClocks()
    async with running(clocks, settings(sock)), ClockAgentClient(sock) as client:
        await client.request("ns/other", gpu_khz=GPU[1])
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b'{"pipeline": "ns/a", "cpu_khz": 100000}')
        writer.write(b" " * (MAX_LINE + 10) + b"\n")
        await writer.drain()
        reply = json.loads(await reader.readline())
        assert reply == {"error": f"request: longer than {MAX_LINE} bytes"}
        try:
            rest = await reader.read()
        except ConnectionResetError:  # Linux's answer when the agent left bytes unread
            rest = b""
        assert rest == b"", "the agent closed that connection"
        writer.close()
        again = await client.request("ns/other", gpu_khz=GPU[1])
        assert again.clocks == {"cpu": None, "gpu": GPU[1]}


@pytest.mark.asyncio
async def test_a_refused_write_is_one_error_line_and_the_agent_serves_on(sock: Path) -> None:
    clocks = FakeClocks()
    async with running(clocks, settings(sock)), ClockAgentClient(sock) as client:
        clocks.refuse_pin = True
        with pytest.raises(ClockAgentError) as refused:
            await client.request("ns/a", cpu_khz=300_000)
        message = str(refused.value)
        assert message.startswith("clock agent refused: clocks not set: Refused: cannot write")
        assert "\n" not in message
        clocks.refuse_pin = False
        reply = await client.request("ns/a", cpu_khz=300_000)
        assert reply.clocks["cpu"] == clocks.pinned["cpu"] == 300_000


@pytest.mark.asyncio
async def test_each_connection_holds_a_bounded_number_of_wishes(sock: Path) -> None:
    clocks = FakeClocks()
    async with running(clocks, settings(sock)), ClockAgentClient(sock) as client:
        for n in range(MAX_WISHES_PER_CONNECTION):
            await client.request(f"ns/p{n}", cpu_khz=100_000)
        with pytest.raises(ClockAgentError, match=f"at most {MAX_WISHES_PER_CONNECTION}"):
            await client.request("ns/one-more", cpu_khz=500_000)
        assert clocks.pinned["cpu"] == 100_000
        await client.request("ns/p0", cpu_khz=200_000)  # a holder may still renew
        assert clocks.pinned["cpu"] == 200_000


@pytest.mark.asyncio
async def test_connections_beyond_the_cap_are_refused(sock: Path) -> None:
    clocks = FakeClocks()
    async with running(clocks, settings(sock)):
        clients = [ClockAgentClient(sock) for _ in range(MAX_CONNECTIONS)]
        for n, client in enumerate(clients):
            await client.request(f"ns/p{n}")
        with pytest.raises(ClockAgentError, match=f"at most {MAX_CONNECTIONS} connections"):
            await ClockAgentClient(sock).request("ns/late")
        for client in clients:
            await client.close()


@pytest.mark.asyncio
async def test_a_restore_failure_at_exit_is_raised_after_cleaning_up(sock: Path) -> None:
    clocks = FakeClocks()

    async def pin_then_break_restore() -> None:
        async with running(clocks, settings(sock)), ClockAgentClient(sock) as client:
            await client.request("ns/a", cpu_khz=300_000)
            clocks.refuse_restore = True

    with pytest.raises(Refused, match="restore failed on 1 domain"):
        await pin_then_break_restore()
    assert not sock.exists()
    assert clocks.pinned["cpu"] == 300_000


@pytest.mark.asyncio
async def test_an_agent_that_cannot_restore_at_start_does_not_serve(sock: Path) -> None:
    clocks = FakeClocks()
    clocks.refuse_restore = True
    with pytest.raises(Refused):
        async with running(clocks, settings(sock)):
            pytest.fail("served without a known state")
    assert not sock.exists()


def test_bounds_that_leave_no_clock_step_are_refused(sock: Path) -> None:
    config = settings(sock, bounds={"gpu": Bounds(600_000, 1_000_000)})
    with pytest.raises(InferedgeError, match="--gpu-min-khz/--gpu-max-khz: no GPU clock step"):
        ClockAgent(FakeClocks(), config)
    with pytest.raises(InferedgeError, match="--lease-s: expected a positive number"):
        ClockAgent(FakeClocks(), settings(sock, lease_s=0))


def test_a_node_without_a_gpu_grants_no_gpu_wish(sock: Path) -> None:
    clocks = FakeClocks({"cpu": CPU})
    agent = ClockAgent(clocks, settings(sock, bounds={"gpu": Bounds(1, 2)}))
    agent.start()
    reply = json.loads(agent.handle(1, b'{"pipeline": "ns/a", "cpu_khz": 1, "gpu_khz": 5}'))
    assert reply["granted"] == {"cpu": 100_000, "gpu": None}
    assert clocks.pinned == {"cpu": 100_000, "gpu": None}


@pytest.mark.asyncio
async def test_a_stale_socket_is_replaced_but_nothing_else(sock: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(sock))  # bound, never listening: what a killed agent leaves
    async with running(FakeClocks(), settings(sock)):
        assert (await exchange(sock, b'{"pipeline": "ns/a"}'))[0]["pipeline"] == "ns/a"
        with pytest.raises(InferedgeError, match="another clock agent is serving it"):
            async with running(FakeClocks(), settings(sock)):
                pytest.fail("two agents on one socket")
    sock.write_text("not a socket")
    with pytest.raises(InferedgeError, match="exists and is not a socket"):
        async with running(FakeClocks(), settings(sock)):
            pytest.fail("replaced a file")
    assert sock.read_text() == "not a socket"


@pytest.mark.asyncio
async def test_the_client_says_in_one_line_when_the_agent_is_unreachable(sock: Path) -> None:
    client = ClockAgentClient(sock)
    with pytest.raises(ClockAgentError, match=f"^clock agent at {sock} unreachable: ") as err:
        await client.request("ns/a", cpu_khz=1)
    assert "\n" not in str(err.value)
    with pytest.raises(ClockAgentError, match="clock request: pipeline: "):
        await client.request("no-namespace", cpu_khz=1)
    with pytest.raises(ClockAgentError, match="clock request: cpu_khz: "):
        await client.request("ns/a", cpu_khz=0)


@pytest.mark.asyncio
async def test_the_client_reconnects_to_a_restarted_agent(sock: Path) -> None:
    clocks = FakeClocks()
    client = ClockAgentClient(sock)
    async with running(clocks, settings(sock)):
        await client.request("ns/a", cpu_khz=300_000)
    async with running(clocks, settings(sock)):
        reply = await client.request("ns/a", cpu_khz=300_000)
        assert reply.clocks["cpu"] == clocks.pinned["cpu"] == 300_000
        await client.close()
        await clocks.until(lambda: clocks.pinned["cpu"] is None)
