"""Messenger against a real nats-server: request/reply, chunking, errors, load sharing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import nats
import numpy as np
import pytest

from inferedge.transport.client import Handler, Headers, Messenger
from inferedge.transport.codec import Encoding, Payload, decode, encode
from inferedge.transport.errors import (
    NoResponders,
    RemoteError,
    RequestTimeout,
    TransportError,
    WireError,
)
from inferedge.transport.headers import MiB
from inferedge.transport.server import EmbeddedNats
from inferedge.transport.subjects import QUEUE_GROUP, subject

SUBJECT = subject("test", "echo", "offload")
PLAN = "0123456789abcdef"


async def echo(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
    """A handler that checks the tensor and sends it back."""
    tensor, meta = decode(headers, payload)
    return encode(tensor, request_id=meta.request_id, plan_hash=meta.plan_hash)


async def summary(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
    """A handler that decodes the tensor and answers small: its byte count."""
    tensor, _ = decode(headers, payload)
    return {"Size": str(tensor.nbytes)}, b""


async def until(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    """Poll a condition that a callback will make true, failing after `limit_s`."""
    for _ in range(int(limit_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)  # poll interval, not a wait for readiness
    pytest.fail(f"condition not met within {limit_s} s")


def tensor_of(size: int) -> np.ndarray:
    return np.random.default_rng(size).integers(0, 256, size=size, dtype=np.uint8)


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [10 * 1024, MiB + 1], ids=["10KiB", "1MiB+1"])
async def test_a_tensor_goes_there_and_back(any_nats_server: EmbeddedNats, size: int) -> None:
    async with (
        await Messenger.connect(any_nats_server.url) as client,
        await Messenger.connect(any_nats_server.url) as worker,
    ):
        await worker.serve(SUBJECT, QUEUE_GROUP, echo)
        sent = tensor_of(size)
        headers, payload = await client.request(
            SUBJECT, *encode(sent, request_id="r1", plan_hash=PLAN)
        )
        received, meta = decode(headers, payload)
        np.testing.assert_array_equal(received, sent)
        assert meta.request_id == "r1"


@pytest.mark.asyncio
async def test_64_mib_is_chunked_both_ways_on_a_1_mib_server(
    client: Messenger, worker: Messenger
) -> None:
    assert client.max_payload == MiB
    await worker.serve(SUBJECT, QUEUE_GROUP, echo)
    sent = np.arange(16 * MiB, dtype=np.float32).reshape(16, MiB)  # 64 MiB
    headers, payload = await client.request(
        SUBJECT, *encode(sent, request_id="big", plan_hash=PLAN), timeout=60
    )
    received, _ = decode(headers, payload)
    np.testing.assert_array_equal(received, sent)
    assert (client.budget.partial_messages, client.budget.buffered_bytes) == (0, 0)
    assert (worker.budget.partial_messages, worker.budget.buffered_bytes) == (0, 0)


@pytest.mark.asyncio
async def test_concurrent_chunked_requests_each_get_their_own_reply(
    client: Messenger, worker: Messenger
) -> None:
    await worker.serve(SUBJECT, QUEUE_GROUP, echo)
    sent = [np.full(3 * MiB, i, np.uint8) for i in range(5)]
    replies = await asyncio.gather(
        *(
            client.request(SUBJECT, *encode(t, request_id=f"r{i}", plan_hash=PLAN))
            for i, t in enumerate(sent)
        )
    )
    for i, (headers, payload) in enumerate(replies):
        received, meta = decode(headers, payload)
        assert meta.request_id == f"r{i}"
        np.testing.assert_array_equal(received, sent[i])


@pytest.mark.asyncio
async def test_a_big_request_with_a_small_reply(client: Messenger, worker: Messenger) -> None:
    await worker.serve(SUBJECT, QUEUE_GROUP, summary)
    headers, payload = await client.request(
        SUBJECT, *encode(tensor_of(3 * MiB), request_id="r", plan_hash=PLAN)
    )
    assert headers["Size"] == str(3 * MiB)
    assert payload == b""


@pytest.mark.asyncio
async def test_a_small_request_with_a_big_reply(client: Messenger, worker: Messenger) -> None:
    big = tensor_of(5 * MiB)

    async def large(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
        return encode(big, request_id="r", plan_hash=PLAN)

    await worker.serve(SUBJECT, QUEUE_GROUP, large)
    headers, payload = await client.request(SUBJECT, {}, b"")
    np.testing.assert_array_equal(decode(headers, payload)[0], big)


@pytest.mark.asyncio
async def test_fp16_and_int8_shrink_the_payload_on_the_wire(
    client: Messenger, worker: Messenger
) -> None:
    await worker.serve(SUBJECT, QUEUE_GROUP, echo)
    sent = np.random.default_rng(0).normal(size=(4, 64, 32, 32)).astype(np.float32)
    encodings: tuple[tuple[Encoding, int], ...] = (("fp16", 2), ("int8", 1))
    for encoding, bytes_per_value in encodings:
        headers, payload = encode(sent, request_id="r", plan_hash=PLAN, encoding=encoding)
        assert len(payload) == sent.size * bytes_per_value
        reply_headers, reply_payload = await client.request(SUBJECT, headers, payload)
        received, _ = decode(reply_headers, reply_payload)
        assert received.dtype == np.float32
        np.testing.assert_allclose(received, sent, atol=0.05 * float(np.abs(sent).max()))


@pytest.mark.asyncio
async def test_replicas_in_a_queue_group_share_the_requests(
    small_nats_server: EmbeddedNats, client: Messenger
) -> None:
    def named(name: str) -> Handler:
        async def handler(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
            return {"Replica": name}, b""

        return handler

    async with (
        await Messenger.connect(small_nats_server.url) as first,
        await Messenger.connect(small_nats_server.url) as second,
    ):
        await first.serve(SUBJECT, QUEUE_GROUP, named("first"))
        await second.serve(SUBJECT, QUEUE_GROUP, named("second"))
        replies = [(await client.request(SUBJECT, {}, b"x"))[0]["Replica"] for _ in range(60)]
    counts = Counter(replies)
    # NATS picks a queue member at random: both sit idle with odds of 2 * 2**-60.
    assert set(counts) == {"first", "second"}
    assert sum(counts.values()) == 60


@pytest.mark.asyncio
async def test_a_failing_handler_gets_an_error_reply_and_the_worker_keeps_serving(
    client: Messenger, worker: Messenger
) -> None:
    async def fussy(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
        if payload == b"boom":
            raise RuntimeError("the model fell over\nsecond line")
        return await echo(headers, payload)

    service = await worker.serve(SUBJECT, QUEUE_GROUP, fussy)
    with pytest.raises(RemoteError) as caught:
        await client.request(SUBJECT, {}, b"boom")
    assert str(caught.value) == f"{SUBJECT}: RuntimeError: the model fell over"
    with pytest.raises(RemoteError, match=r"WireError: Inferedge-Version: missing header"):
        await client.request(SUBJECT, {}, b"not a tensor")
    sent = tensor_of(100)
    headers, payload = await client.request(SUBJECT, *encode(sent, request_id="r", plan_hash=PLAN))
    np.testing.assert_array_equal(decode(headers, payload)[0], sent)
    assert (service.handled, service.failed) == (1, 2)


@pytest.mark.asyncio
async def test_a_malformed_tensor_sent_raw_gets_an_error_reply_naming_the_header(
    small_nats_server: EmbeddedNats, worker: Messenger
) -> None:
    service = await worker.serve(SUBJECT, QUEUE_GROUP, echo)
    headers, payload = encode(tensor_of(12), request_id="r", plan_hash=PLAN)
    raw = await nats.connect(small_nats_server.url)
    try:
        for bad, problem in (
            ({**headers, "Inferedge-Shape": "[3,-4]"}, "Inferedge-Shape: '[3,-4]'"),
            ({**headers, "Inferedge-Dtype": "complex64"}, "Inferedge-Dtype: 'complex64'"),
            ({**headers, "Inferedge-Version": "9"}, "Inferedge-Version: '9'"),
        ):
            reply = await raw.request(SUBJECT, bytes(payload), timeout=5, headers=bad)
            assert problem in (reply.headers or {})["Inferedge-Error"]
        reply = await raw.request(SUBJECT, bytes(payload), timeout=5, headers=headers)
        np.testing.assert_array_equal(decode(reply.headers, reply.data)[0], tensor_of(12))
    finally:
        await raw.close()
    assert (service.handled, service.failed) == (1, 3)


@pytest.mark.asyncio
async def test_a_handler_returning_garbage_gets_an_error_reply(
    client: Messenger, worker: Messenger
) -> None:
    async def broken(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
        return {"Bad Header": "x"}, b""

    await worker.serve(SUBJECT, QUEUE_GROUP, broken)
    with pytest.raises(RemoteError, match="BadHeaderError"):
        await client.request(SUBJECT, {}, b"")
    with pytest.raises(RemoteError, match="BadHeaderError"):
        await client.request(SUBJECT, {}, b"again")


@pytest.mark.asyncio
async def test_nobody_serving_raises_no_responders(client: Messenger) -> None:
    with pytest.raises(NoResponders, match=f"{SUBJECT}: no service is subscribed"):
        await client.request(SUBJECT, {}, b"x")
    with pytest.raises(NoResponders):
        await client.request(SUBJECT, {}, bytes(2 * MiB))  # chunked: chunk 0 finds nobody


@pytest.mark.asyncio
async def test_a_slow_handler_raises_request_timeout(client: Messenger, worker: Messenger) -> None:
    release = asyncio.Event()

    async def stuck(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
        await release.wait()
        return {}, b""

    await worker.serve(SUBJECT, QUEUE_GROUP, stuck)
    try:
        with pytest.raises(RequestTimeout, match=f"{SUBJECT}: no reply within 0.2 s"):
            await client.request(SUBJECT, {}, b"x", timeout=0.2)
        with pytest.raises(RequestTimeout):
            await client.request(SUBJECT, {}, bytes(3 * MiB), timeout=0.2)
    finally:
        release.set()


@pytest.mark.asyncio
async def test_callers_cannot_set_the_transports_own_headers(client: Messenger) -> None:
    for key in ("Inferedge-Chunks", "Inferedge-Error", "Inferedge-Stream"):
        with pytest.raises(WireError, match=f"{key}: reserved for the transport"):
            await client.request(SUBJECT, {key: "1"}, b"")


@pytest.mark.asyncio
async def test_serve_refuses_bad_concurrency(worker: Messenger) -> None:
    with pytest.raises(TransportError, match="expected 1 <= concurrency <= max_in_flight"):
        await worker.serve(SUBJECT, None, echo, concurrency=0)


@pytest.mark.asyncio
async def test_concurrent_handlers_when_asked_for(client: Messenger, worker: Messenger) -> None:
    both_inside = asyncio.Event()
    inside = 0

    async def meet(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
        nonlocal inside
        inside += 1
        if inside == 2:
            both_inside.set()
        await both_inside.wait()  # only returns when two calls run at once
        return {}, b"met"

    await worker.serve(SUBJECT, QUEUE_GROUP, meet, concurrency=2)
    replies = await asyncio.gather(
        client.request(SUBJECT, {}, b"a", timeout=5), client.request(SUBJECT, {}, b"b", timeout=5)
    )
    assert [payload for _, payload in replies] == [b"met", b"met"]


@pytest.mark.asyncio
async def test_stopping_a_service_answers_what_it_took_in(
    client: Messenger, worker: Messenger
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
        started.set()
        await release.wait()
        return {}, b"done"

    service = await worker.serve(SUBJECT, QUEUE_GROUP, slow)
    pending = asyncio.create_task(client.request(SUBJECT, {}, b"x", timeout=10))
    await started.wait()
    stopping = asyncio.create_task(service.stop())
    release.set()
    await stopping
    assert (await pending)[1] == b"done"
    with pytest.raises(NoResponders):
        await client.request(SUBJECT, {}, b"x")


@pytest.mark.asyncio
async def test_connecting_to_nothing_fails_in_one_line() -> None:
    with pytest.raises(TransportError) as caught:
        await Messenger.connect("nats://127.0.0.1:9", connect_timeout_s=0.5)
    message = str(caught.value)
    assert message.startswith("cannot connect to NATS at nats://127.0.0.1:9 within 0.5 s")
    assert "\n" not in message


@pytest.mark.asyncio
async def test_a_request_succeeds_after_the_server_restarts() -> None:
    server = EmbeddedNats().start()
    try:
        async with (
            await Messenger.connect(server.url, reconnect_wait_s=0.05) as client,
            await Messenger.connect(server.url, reconnect_wait_s=0.05) as worker,
        ):
            await worker.serve(SUBJECT, QUEUE_GROUP, summary)
            headers = encode(tensor_of(1000), request_id="r", plan_hash=PLAN)
            assert (await client.request(SUBJECT, *headers))[0]["Size"] == "1000"
            port = server.port
            await asyncio.to_thread(server.stop)
            await until(lambda: not worker.is_connected)  # the worker noticed
            server = await asyncio.to_thread(EmbeddedNats(port=port).start)
            # Nobody calls connect again: both clients find the new server by themselves.
            # Until the worker has renewed its subscription there, a request finds no one.
            await worker.wait_connected(timeout=20)
            reply = await client.request(SUBJECT, *headers, timeout=20)
            assert reply[0]["Size"] == "1000"
            assert client.is_connected
    finally:
        server.stop()


def test_a_cancelled_broadcast_stays_cancelled(nats_server: EmbeddedNats) -> None:
    """nats-py's flush swallows CancelledError; a broadcast cancelled at any point (Ctrl-C in
    `inferedge run` cancels its main task) must still end cancelled, never return."""

    async def run() -> list[str]:
        outcomes = []
        async with await Messenger.connect(nats_server.url) as messenger:
            for yields in range(40):
                task = asyncio.create_task(
                    messenger.broadcast("cancel.me", b"{}", expect=1, timeout=30)
                )
                for _ in range(yields):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    outcomes.append("cancelled")
                else:
                    outcomes.append(f"returned after {yields} yields")
        return outcomes

    assert set(asyncio.run(run())) == {"cancelled"}
