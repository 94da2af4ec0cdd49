"""The chunking protocol, spoken by hand with nats-py to a real worker: bad and stalled peers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from inferedge.transport.chunking import (
    CHUNK,
    CHUNK_SIZE,
    CHUNKS,
    SIZE,
    STREAM,
    ReassemblyBudget,
    ReassemblyLimits,
    chunk_size,
    fits,
)
from inferedge.transport.client import Headers, Messenger
from inferedge.transport.codec import Payload
from inferedge.transport.errors import BusyError, TransportError
from inferedge.transport.headers import ERROR, MiB, header_block_size
from inferedge.transport.server import EmbeddedNats
from inferedge.transport.subjects import QUEUE_GROUP, subject

SUBJECT = subject("test", "chunks", "offload")
CHUNK_BYTES = 1024
LIMITS = ReassemblyLimits(
    max_message_bytes=8 * MiB,
    max_partial_messages=2,
    max_buffered_bytes=10 * MiB,
    idle_timeout_s=0.3,
)


async def length(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
    return {"Length": str(len(payload))}, b""


@pytest_asyncio.fixture
async def worker(small_nats_server: EmbeddedNats) -> AsyncIterator[Messenger]:
    """A worker answering with the length of what it reassembled, with tight limits."""
    async with await Messenger.connect(small_nats_server.url, limits=LIMITS) as messenger:
        await messenger.serve(SUBJECT, QUEUE_GROUP, length, concurrency=4)
        yield messenger


@pytest_asyncio.fixture
async def raw(small_nats_server: EmbeddedNats) -> AsyncIterator[Client]:
    """A plain nats-py connection, to send what a Messenger never would."""
    nc = await nats.connect(small_nats_server.url)
    yield nc
    await nc.close()


def announcing(total: int, count: int | None = None, size: int = CHUNK_BYTES) -> Headers:
    count = count if count is not None else -(-total // size)
    return {CHUNKS: str(count), SIZE: str(total), CHUNK_SIZE: str(size)}


async def start(raw: Client, headers: Headers, data: bytes = b"") -> tuple[Subscription, Msg]:
    """Announce a chunked message with a control inbox; return it and the worker's answer."""
    control = await raw.subscribe(raw.new_inbox())
    await raw.publish(SUBJECT, data, reply=control.subject, headers=headers)
    return control, await control.next_msg(timeout=5)


def stream_of(go_ahead: Msg) -> str:
    assert go_ahead.headers is not None
    assert STREAM in go_ahead.headers, go_ahead.headers
    return go_ahead.headers[STREAM]


def error_of(msg: Msg) -> str:
    assert msg.headers is not None
    assert ERROR in msg.headers, msg.headers
    return msg.headers[ERROR]


async def assert_still_serving(worker: Messenger, raw: Client) -> None:
    reply = await raw.request(SUBJECT, b"abc", timeout=5)
    assert reply.headers == {"Length": "3"}
    assert (worker.budget.partial_messages, worker.budget.buffered_bytes) == (0, 0)


@pytest.mark.asyncio
async def test_by_hand_a_three_chunk_message_is_reassembled_in_order(
    worker: Messenger, raw: Client
) -> None:
    control, go_ahead = await start(raw, announcing(2500))
    stream = stream_of(go_ahead)
    await raw.publish(stream, b"a" * CHUNK_BYTES, headers={CHUNK: "0"})
    await raw.publish(stream, b"b" * CHUNK_BYTES, reply=control.subject, headers={CHUNK: "1"})
    ack = await control.next_msg(timeout=5)
    assert ack.headers == {CHUNK: "1"}
    await raw.publish(stream, b"c" * (2500 - 2 * CHUNK_BYTES), headers={CHUNK: "2"})
    reply = await control.next_msg(timeout=5)
    assert reply.headers == {"Length": "2500"}
    await assert_still_serving(worker, raw)


@pytest.mark.asyncio
async def test_a_one_chunk_message_is_allowed(worker: Messenger, raw: Client) -> None:
    control, go_ahead = await start(raw, announcing(10))
    await raw.publish(stream_of(go_ahead), bytes(10), headers={CHUNK: "0"})
    assert (await control.next_msg(timeout=5)).headers == {"Length": "10"}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("headers", "data", "problem"),
    [
        ({CHUNKS: "abc", SIZE: "2000", CHUNK_SIZE: "1000"}, b"", "Inferedge-Chunks: 'abc'"),
        ({CHUNKS: "2", SIZE: "-5", CHUNK_SIZE: "1000"}, b"", "Inferedge-Size: '-5'"),
        ({CHUNKS: "2", SIZE: "2000"}, b"", "Inferedge-Chunk-Size: '': expected a positive"),
        ({CHUNKS: "2", SIZE: "2000", CHUNK_SIZE: "0"}, b"", "Inferedge-Chunk-Size: '0'"),
        ({CHUNKS: "²", SIZE: "2000", CHUNK_SIZE: "1000"}, b"", "Inferedge-Chunks: '²'"),
        ({CHUNKS: "0", SIZE: "0", CHUNK_SIZE: "1000"}, b"", "Inferedge-Chunks: '0'"),
        (announcing(2000, count=3), b"", "3 chunks of 1024 bytes cannot hold 2000 bytes"),
        (announcing(2000, count=1), b"", "1 chunks of 1024 bytes cannot hold 2000"),
        (announcing(2000), b"data", "the announcement of chunks must have an empty payload"),
        (announcing(9 * MiB), b"", "Inferedge-Size: 9437184 bytes is more than this receiver"),
        (announcing(5000, size=10), b"", "Inferedge-Chunk-Size: 10 bytes per chunk"),
    ],
)
async def test_inconsistent_chunk_metadata_gets_an_error_reply(
    worker: Messenger, raw: Client, headers: Headers, data: bytes, problem: str
) -> None:
    _, answer = await start(raw, headers, data)
    assert error_of(answer).startswith("WireError: ")
    assert problem in error_of(answer)
    await assert_still_serving(worker, raw)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("index", "size", "problem"),
    [
        ("1", CHUNK_BYTES, "Inferedge-Chunk: '1' arrived where 0 was expected"),
        ("0", 10, "chunk 0 of 3 has 10 bytes, not 1024"),
        (None, CHUNK_BYTES, "Inferedge-Chunk: None arrived where 0 was expected"),
    ],
)
async def test_a_chunk_out_of_order_or_of_the_wrong_length_is_refused(
    worker: Messenger, raw: Client, index: str | None, size: int, problem: str
) -> None:
    control, go_ahead = await start(raw, announcing(2500))
    headers = {CHUNK: index} if index is not None else {"Other": "x"}
    await raw.publish(stream_of(go_ahead), bytes(size), headers=headers)
    answer = await control.next_msg(timeout=5)
    assert problem in error_of(answer)
    await assert_still_serving(worker, raw)


@pytest.mark.asyncio
async def test_a_stalled_stream_times_out_and_frees_its_buffer(
    worker: Messenger, raw: Client
) -> None:
    control, go_ahead = await start(raw, announcing(3000))
    await raw.publish(stream_of(go_ahead), bytes(CHUNK_BYTES), headers={CHUNK: "0"})
    await raw.flush()
    assert (worker.budget.partial_messages, worker.budget.buffered_bytes) == (1, 3000)
    answer = await control.next_msg(timeout=5)  # nothing more is sent
    assert error_of(answer) == "RequestTimeout: chunk 1 of 3 did not arrive within 0.3 s"
    await assert_still_serving(worker, raw)


@pytest.mark.asyncio
async def test_a_slow_stream_is_cut_off_after_the_transfer_timeout(
    small_nats_server: EmbeddedNats, raw: Client
) -> None:
    limits = ReassemblyLimits(idle_timeout_s=5, transfer_timeout_s=0.3)
    async with await Messenger.connect(small_nats_server.url, limits=limits) as worker:
        await worker.serve(SUBJECT, QUEUE_GROUP, length)
        control, go_ahead = await start(raw, announcing(3000))
        await raw.publish(stream_of(go_ahead), bytes(CHUNK_BYTES), headers={CHUNK: "0"})
        answer = await control.next_msg(timeout=5)  # long before the 5 s idle timeout
        assert error_of(answer) == "RequestTimeout: 3 chunks did not all arrive within 0.3 s"
        assert (worker.budget.partial_messages, worker.budget.buffered_bytes) == (0, 0)


@pytest.mark.asyncio
async def test_too_many_partial_messages_are_refused_until_they_end(
    worker: Messenger, raw: Client
) -> None:
    controls = []
    for _ in range(LIMITS.max_partial_messages):
        control, go_ahead = await start(raw, announcing(2000))
        stream_of(go_ahead)
        controls.append(control)
    _, refusal = await start(raw, announcing(2000))
    assert error_of(refusal).startswith(
        "BusyError: 2 chunked messages are already being reassembled (limit 2)"
    )
    for control in controls:  # the stalled ones time out...
        assert "did not arrive" in error_of(await control.next_msg(timeout=5))
    await assert_still_serving(worker, raw)  # ...and leave room again


@pytest.mark.asyncio
async def test_too_many_buffered_bytes_are_refused(worker: Messenger, raw: Client) -> None:
    control, go_ahead = await start(raw, announcing(6 * MiB, size=MiB - 200))
    stream_of(go_ahead)
    _, refusal = await start(raw, announcing(5 * MiB, size=MiB - 200))
    assert "6291456 bytes of chunked messages are already buffered" in error_of(refusal)
    assert "did not arrive" in error_of(await control.next_msg(timeout=5))
    await assert_still_serving(worker, raw)


@pytest.mark.asyncio
async def test_an_announcement_without_a_reply_subject_is_dropped(
    worker: Messenger, raw: Client
) -> None:
    await raw.publish(SUBJECT, b"", headers=announcing(2000))
    await assert_still_serving(worker, raw)


@pytest.mark.asyncio
async def test_a_requester_going_silent_mid_reply_does_not_hurt_the_worker(
    small_nats_server: EmbeddedNats, raw: Client
) -> None:
    async def large(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
        return {}, bytes(3 * MiB) if payload == b"big" else b"small"

    async with await Messenger.connect(small_nats_server.url, limits=LIMITS) as worker:
        service = await worker.serve(SUBJECT, QUEUE_GROUP, large, concurrency=2)
        announced = await raw.request(SUBJECT, b"big", timeout=5)
        assert CHUNKS in (announced.headers or {})  # the reply is announced; no go-ahead comes
        assert (await raw.request(SUBJECT, b"", timeout=5)).data == b"small"
        await service.stop()
    assert service.failed == 1


def test_chunks_fill_max_payload_with_their_small_header() -> None:
    size = chunk_size(64 * MiB, MiB)
    assert header_block_size({CHUNK: str(64 * MiB)}) + size == MiB
    assert size > MiB - 100


def test_a_server_too_small_for_chunks_is_refused() -> None:
    with pytest.raises(TransportError, match="max_payload=100 is too small to send chunks"):
        chunk_size(10 * MiB, 100)


def test_fits_counts_the_header_block_against_max_payload() -> None:
    headers = {"A": "b"}
    block = header_block_size(headers)
    assert fits(headers, MiB - block, MiB)
    assert not fits(headers, MiB - block + 1, MiB)
    assert fits({}, MiB, MiB)


def test_the_budget_counts_and_releases() -> None:
    budget = ReassemblyBudget(ReassemblyLimits(max_partial_messages=2, max_buffered_bytes=100))
    with budget.reserve(60):
        assert (budget.partial_messages, budget.buffered_bytes) == (1, 60)
        with pytest.raises(BusyError, match="60 bytes of chunked messages"), budget.reserve(41):
            pass
        with budget.reserve(40), pytest.raises(BusyError, match="limit 2"), budget.reserve(0):
            pass
    assert (budget.partial_messages, budget.buffered_bytes) == (0, 0)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"max_message_bytes": 0}, "max_message_bytes=0: expected at least 1"),
        ({"max_partial_messages": 0}, "max_partial_messages=0"),
        ({"max_buffered_bytes": -1}, "max_buffered_bytes=-1"),
        ({"idle_timeout_s": 0}, "idle_timeout_s=0: expected above 0"),
        ({"transfer_timeout_s": -1}, "transfer_timeout_s=-1: expected above 0"),
    ],
)
def test_limits_are_checked(kwargs: dict[str, float], problem: str) -> None:
    with pytest.raises(TransportError, match=problem):
        ReassemblyLimits(**kwargs)  # type: ignore[arg-type]
