"""The bus cannot exhaust a worker: floods are refused fast, stale chunk announcements are
evicted, drops are counted, and refusal logs are rate-limited. Against a real nats-server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from inferedge.transport.chunking import (
    CHUNK,
    CHUNK_SIZE,
    CHUNKS,
    SIZE,
    STREAM,
    ReassemblyLimits,
)
from inferedge.transport.client import Headers, Messenger
from inferedge.transport.codec import Payload
from inferedge.transport.errors import RemoteError
from inferedge.transport.headers import ERROR, MiB
from inferedge.transport.refusals import RateLimitedLog
from inferedge.transport.server import EmbeddedNats
from inferedge.transport.subjects import QUEUE_GROUP, subject
from tests.runtime.helpers import eventually

SUBJECT = subject("test", "flood", "offload")


@pytest_asyncio.fixture
async def raw(small_nats_server: EmbeddedNats) -> AsyncIterator[Client]:
    nc = await nats.connect(small_nats_server.url)
    yield nc
    await nc.close()


def frozen_log(name: str) -> RateLimitedLog:
    """A rate limiter whose clock never moves: every reason logs exactly once."""
    return RateLimitedLog(logging.getLogger(name), clock=lambda: 0.0)


@pytest.mark.asyncio
async def test_a_flood_is_refused_at_once_counted_and_logged_once(
    worker: Messenger, client: Messenger, caplog: pytest.LogCaptureFixture
) -> None:
    release = asyncio.Event()

    async def blocked(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
        await release.wait()
        return {}, b"done"

    worker.refusals.log = frozen_log("test.flood")
    service = await worker.serve(
        SUBJECT, QUEUE_GROUP, blocked, concurrency=2, max_in_flight=2, refuse_when_full=True
    )
    tasks = [asyncio.create_task(client.request(SUBJECT, {}, b"x", timeout=30)) for _ in range(50)]
    await eventually(lambda: sum(t.done() for t in tasks) == 48, "48 busy refusals")
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    busy = [r for r in results if isinstance(r, RemoteError)]
    assert len(busy) == 48
    assert all("BusyError: " in str(r) and "(limit 2)" in str(r) for r in busy)
    assert sum(1 for r in results if isinstance(r, tuple) and r[1] == b"done") == 2
    assert service.refused == 48
    assert worker.refusals.counts["busy"] == 48
    assert worker.is_connected
    lines = [r for r in caplog.records if r.name == "test.flood"]
    assert len(lines) == 1
    assert "refused (busy)" in lines[0].getMessage()
    await service.stop()


@pytest.mark.asyncio
async def test_messages_past_the_pending_limit_are_dropped_and_counted_not_cut_off(
    worker: Messenger, raw: Client, client: Messenger
) -> None:
    release = asyncio.Event()

    async def blocked(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
        await release.wait()
        return {}, payload

    worker.refusals.log = frozen_log("test.pending")
    service = await worker.serve(SUBJECT, QUEUE_GROUP, blocked, pending_msgs_limit=1)
    inbox = await raw.subscribe(raw.new_inbox())
    for _ in range(10):  # one is answered (blocked), one waits, the rest overflow
        await raw.publish(SUBJECT, b"x", reply=inbox.subject)
    await raw.flush()
    await eventually(lambda: worker.refusals.counts["slow_consumer"] >= 1, "a counted drop")
    release.set()
    assert worker.is_connected
    assert (await client.request(SUBJECT, {}, b"still", timeout=10))[1] == b"still"
    await service.stop()


@pytest.mark.asyncio
async def test_stale_announcements_do_not_block_a_real_chunked_transfer(
    small_nats_server: EmbeddedNats, raw: Client, client: Messenger
) -> None:
    # Stalled slots would hold the budget for 60 s; only eviction can free them here.
    limits = ReassemblyLimits(
        max_partial_messages=2, idle_timeout_s=60.0, evict_unstarted_after_s=0.0
    )

    async def length(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
        return {}, str(len(payload)).encode()

    async with await Messenger.connect(small_nats_server.url, limits=limits) as worker:
        worker.refusals.log = frozen_log("test.evict")
        await worker.serve(SUBJECT, QUEUE_GROUP, length, concurrency=4)
        controls, streams = [], []
        for _ in range(2):  # announcements that never send a chunk take every slot
            control = await raw.subscribe(raw.new_inbox())
            announce = {CHUNKS: "2", SIZE: "2000", CHUNK_SIZE: "1024"}
            await raw.publish(SUBJECT, b"", reply=control.subject, headers=announce)
            go_ahead = await control.next_msg(timeout=10)  # the slot is held
            controls.append(control)
            streams.append((go_ahead.headers or {})[STREAM])
        assert worker.budget.partial_messages == 2
        _, reply = await client.request(SUBJECT, {}, bytes(3 * MiB), timeout=10)
        assert reply == str(3 * MiB).encode()  # the real transfer evicted the oldest
        evicted = await controls[0].next_msg(timeout=10)
        assert (evicted.headers or {})[ERROR].startswith("BusyError: evicted")
        assert worker.refusals.counts["reassembly_evicted"] == 1
        # The other stale slot is still held (it is only evicted for a newcomer); end it.
        await raw.publish(streams[1], bytes(1024), headers={CHUNK: "7"})
        assert "WireError" in (await controls[1].next_msg(timeout=10)).headers[ERROR]  # type: ignore[index]
        assert worker.budget.partial_messages == 0


def test_a_stale_slot_is_the_oldest_that_has_not_started() -> None:
    from inferedge.transport.reassembly import stale_slot, transfer_deadline_s

    slots = [(5.0, True), (3.0, False), (1.0, True), (4.0, False)]
    assert stale_slot(slots, now=10.0, min_age_s=1.0) == 1
    assert stale_slot(slots, now=4.5, min_age_s=1.0) == 1
    assert stale_slot(slots, now=3.5, min_age_s=1.0) is None  # too young
    assert stale_slot([(0.0, True)], now=100.0, min_age_s=0.0) is None  # started: never
    limits = ReassemblyLimits(idle_timeout_s=2.0, min_rate_bytes_per_s=MiB)
    assert transfer_deadline_s(4 * MiB, limits) == 8.0
    assert transfer_deadline_s(10_000 * MiB, limits) == limits.transfer_timeout_s
