"""Messages larger than the server's max_payload, sent as ordered chunks over core NATS.

Protocol (no JetStream needed; the same in both directions, request and reply):

1. The sender subscribes to a control inbox C and publishes an announcement to the destination
   with reply subject C: the message's own headers plus `Inferedge-Chunks` (N >= 1),
   `Inferedge-Size` (total payload bytes) and `Inferedge-Chunk-Size` (bytes in every chunk but
   the last, which holds the rest), and an empty payload. Only the announcement goes to the
   destination, so one queue group member receives the whole message; it carries no data, so
   the handshake costs one small round trip rather than a chunk's transit.
2. The receiver checks that metadata against its limits and its reassembly budget, subscribes
   to a fresh stream inbox S, and answers on C with `Inferedge-Stream: S`, or refuses with
   `Inferedge-Error`.
3. The sender publishes chunks 0..N-1 to S in order, each with `Inferedge-Chunk: i` (NATS keeps
   one publisher's messages in order). After every ACK_EVERY_BYTES it puts reply subject C on
   a chunk, and the receiver acks it (`Inferedge-Chunk: i`). The sender lets at most
   MAX_UNACKED acks be outstanding, which bounds the data in flight, so neither nats-server's
   buffers nor the receiver's queue overflow, yet the stream only pauses when the receiver
   falls a whole ACK_EVERY_BYTES behind.
4. The receiver copies each chunk into one preallocated buffer, refuses an index or length it
   does not expect (WireError), and gives up, freeing the buffer, when the next chunk does not
   arrive within `idle_timeout_s` or the whole message within its transfer deadline (the
   announced size at `min_rate_bytes_per_s`, plus two `idle_timeout_s`, at most
   `transfer_timeout_s`). Receivers cap the message size, the number of messages being
   reassembled and their bytes together (`ReassemblyLimits`); an announcement past the size cap
   is refused with WireError, one past the others with BusyError.
5. Announcements that never send data must not starve real transfers: when the budget is full,
   a new announcement evicts the oldest slot that has not received its first chunk for
   `evict_unstarted_after_s` (a real sender sends chunk 0 right after the go-ahead, one round
   trip), and that slot's announcer gets a BusyError reply. Slots that are receiving data are
   never evicted, so a flood of announcements can delay a transfer by at most that long, and
   cannot break one that has started.

For a request, C is also where the final reply arrives (its reply subject); a reply larger than
max_payload travels the same way from the responder to the requester's reply subject.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Mapping
from typing import Final, cast

import nats.errors
import numpy as np
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from inferedge.core.errors import one_line
from inferedge.transport.codec import Payload
from inferedge.transport.errors import (
    BusyError,
    NoResponders,
    RemoteError,
    RequestTimeout,
    TransportError,
    WireError,
)
from inferedge.transport.headers import (
    ERROR,
    NATS_STATUS,
    NO_RESPONDERS_STATUS,
    MiB,
    header_block_size,
)
from inferedge.transport.reassembly import (
    ReassemblyBudget,
    ReassemblyLimits,
    Slot,
    transfer_deadline_s,
)

__all__ = [
    "ReassemblyBudget",
    "ReassemblyLimits",
    "byte_view",
    "check_reply",
    "chunk_size",
    "fits",
    "is_chunked",
    "receive_chunked",
    "send_chunked",
]

CHUNKS: Final = "Inferedge-Chunks"
SIZE: Final = "Inferedge-Size"
CHUNK_SIZE: Final = "Inferedge-Chunk-Size"
CHUNK: Final = "Inferedge-Chunk"
STREAM: Final = "Inferedge-Stream"
PROTOCOL_HEADERS: Final = frozenset({CHUNKS, SIZE, CHUNK_SIZE, CHUNK, STREAM, ERROR})

ACK_EVERY_BYTES: Final = 4 * MiB
MAX_UNACKED: Final = 2
# A receiver queues at most this much of one stream: a sender keeping to the protocol stays
# below it, one that does not loses chunks and times out instead of filling memory.
_STREAM_PENDING_BYTES: Final = (MAX_UNACKED + 1) * ACK_EVERY_BYTES
# Smaller chunks would let one message take thousands of round trips to deliver.
_MIN_CHUNK_BYTES: Final = 1024

log = logging.getLogger(__name__)


def byte_view(payload: Payload) -> memoryview:
    """A flat byte view of a payload, so len() counts bytes and slices do not copy."""
    view = memoryview(payload)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def fits(headers: Mapping[str, str], size: int, max_payload: int) -> bool:
    """Whether headers and `size` payload bytes go in one message under max_payload."""
    return header_block_size(headers) + size <= max_payload


def chunk_size(total: int, max_payload: int) -> int:
    """Payload bytes per chunk: what a chunk's own small header leaves of max_payload."""
    # No chunk index exceeds `total`, so its digits bound the header's size.
    size = max_payload - header_block_size({CHUNK: str(total)})
    if size < _MIN_CHUNK_BYTES:
        raise TransportError(f"max_payload={max_payload} is too small to send chunks")
    return size


def check_no_protocol_headers(headers: Mapping[str, str]) -> None:
    """Refuse caller headers that the chunking protocol or error replies own."""
    if PROTOCOL_HEADERS.isdisjoint(headers):
        return
    key = min(PROTOCOL_HEADERS.intersection(headers))
    raise WireError(f"{key}: reserved for the transport, cannot be set by a caller")


def check_reply(msg: Msg, where: str) -> None:
    """Raise for an answer that is a no-responders status or an `Inferedge-Error` reply."""
    headers = msg.headers or {}
    if headers.get(NATS_STATUS) == NO_RESPONDERS_STATUS:
        raise NoResponders(f"{where}: no service is subscribed")
    if ERROR in headers:
        raise RemoteError(f"{where}: {headers[ERROR]}")


async def send_chunked(
    nc: Client,
    destination: str,
    headers: Mapping[str, str],
    payload: memoryview,
    control: Subscription,
    *,
    accept_timeout_s: float,
    step_timeout_s: float,
) -> None:
    """Send a payload larger than max_payload as chunks (the sender's half of the protocol).

    `control` is the sender's subscription to C. The receiver has `accept_timeout_s` to
    answer the announcement (a busy worker takes a queued request in late) and `step_timeout_s`
    for each ack. RemoteError when the receiver refuses, RequestTimeout when it is silent.
    """
    total = payload.nbytes
    size = chunk_size(total, nc.max_payload)
    count = math.ceil(total / size)
    announcement = {**headers, CHUNKS: str(count), SIZE: str(total), CHUNK_SIZE: str(size)}
    if header_block_size(announcement) > nc.max_payload:
        raise WireError(
            f"headers take {header_block_size(headers)} bytes, too many for "
            f"max_payload={nc.max_payload}"
        )
    await nc.publish(destination, b"", control.subject, announcement)
    go_ahead = await _next(control, accept_timeout_s, f"{destination}: go-ahead for chunks")
    check_reply(go_ahead, destination)
    stream = (go_ahead.headers or {}).get(STREAM, "")
    if not stream:
        raise WireError(f"{destination}: the go-ahead for chunks has no {STREAM} header")
    unacked: deque[int] = deque()
    since_ack = 0
    for index in range(count):
        piece = payload[index * size : (index + 1) * size]
        since_ack += piece.nbytes
        wants_ack = since_ack >= ACK_EVERY_BYTES and index < count - 1
        if wants_ack and len(unacked) == MAX_UNACKED:
            await _acked(control, unacked.popleft(), step_timeout_s, destination)
        await nc.publish(
            stream, as_bytes(piece), control.subject if wants_ack else "", {CHUNK: str(index)}
        )
        if wants_ack:
            unacked.append(index)
            since_ack = 0
    # Acks still due arrive on C before anything else, such as a request's reply.
    for index in unacked:
        await _acked(control, index, step_timeout_s, destination)


async def _acked(control: Subscription, index: int, timeout_s: float, destination: str) -> None:
    ack = await _next(control, timeout_s, f"{destination}: ack of chunk {index}")
    check_reply(ack, destination)
    if (ack.headers or {}).get(CHUNK) != str(index):
        raise WireError(f"{destination}: expected the ack of chunk {index}")


async def receive_chunked(
    nc: Client, announcement: Msg, budget: ReassemblyBudget
) -> tuple[dict[str, str], memoryview]:
    """Reassemble a chunked message from its announcement (the receiver's half).

    Returns the sender's headers without the protocol's and the whole payload. WireError for
    inconsistent metadata or chunks, BusyError when the budget is spent, RequestTimeout when
    a chunk is late; the partial buffer is freed in every case.
    """
    headers = dict(announcement.headers or {})
    count, total, size = _chunk_metadata(headers, budget.limits)
    if announcement.data:
        raise WireError(f"{CHUNKS}: the announcement of chunks must have an empty payload")
    if not announcement.reply:
        raise WireError(f"{CHUNKS}: the announcement has no reply subject for the go-ahead")
    limits = budget.limits
    with budget.reserve(total) as slot:
        stream = await nc.subscribe(
            nc.new_inbox(), pending_bytes_limit=_STREAM_PENDING_BYTES + 2 * size
        )
        try:
            await nc.publish(announcement.reply, b"", headers={STREAM: stream.subject})
            # Allocated while the go-ahead travels, and left unzeroed: chunks fill all of it.
            view = np.empty(total, np.uint8).data
            within = transfer_deadline_s(total, limits)
            async with asyncio.timeout(within):
                for index in range(count):
                    offset = index * size
                    expected = min(size, total - offset)
                    what = f"chunk {index} of {count}"
                    if index == 0:
                        msg = await _first(stream, limits.idle_timeout_s, slot)
                        slot.started = True
                    else:
                        msg = await _next(stream, limits.idle_timeout_s, what)
                    got = (msg.headers or {}).get(CHUNK)
                    if got != str(index):
                        raise WireError(f"{CHUNK}: {got!r} arrived where {index} was expected")
                    if len(msg.data) != expected:
                        raise WireError(
                            f"{CHUNK}: {what} has {len(msg.data)} bytes, not {expected}"
                        )
                    view[offset : offset + expected] = msg.data
                    if msg.reply:
                        await nc.publish(msg.reply, b"", headers={CHUNK: str(index)})
        except TimeoutError as exc:
            raise RequestTimeout(f"{count} chunks did not all arrive within {within:g} s") from exc
        finally:
            await unsubscribe_quietly(stream)
    for key in (CHUNKS, SIZE, CHUNK_SIZE):
        del headers[key]
    return headers, view


def is_chunked(msg: Msg) -> bool:
    """Whether a message announces a chunked message."""
    return msg.headers is not None and CHUNKS in msg.headers


async def unsubscribe_quietly(subscription: Subscription) -> None:
    """Unsubscribe, ignoring a connection that closed or a subscription already gone."""
    try:
        await subscription.unsubscribe()
    except nats.errors.Error as exc:
        log.debug("unsubscribe from %s: %s", subscription.subject, one_line(exc))


def _chunk_metadata(headers: Mapping[str, str], limits: ReassemblyLimits) -> tuple[int, int, int]:
    count = _positive_int(headers, CHUNKS)
    total = _positive_int(headers, SIZE)
    size = _positive_int(headers, CHUNK_SIZE)
    if total > limits.max_message_bytes:
        raise WireError(
            f"{SIZE}: {total} bytes is more than this receiver accepts ({limits.max_message_bytes})"
        )
    if size < min(total, _MIN_CHUNK_BYTES):
        raise WireError(
            f"{CHUNK_SIZE}: {size} bytes per chunk; expected at least {_MIN_CHUNK_BYTES}"
        )
    if count != math.ceil(total / size):
        raise WireError(
            f"{CHUNKS}: {count} chunks of {size} bytes cannot hold {total} bytes "
            "(expected ceil(size / chunk size))"
        )
    return count, total, size


def _positive_int(headers: Mapping[str, str], key: str) -> int:
    text = headers.get(key, "")
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) < 1:
        raise WireError(f"{key}: {text[:40]!r}: expected a positive integer")
    return int(text)


async def _first(stream: Subscription, timeout_s: float, slot: Slot) -> Msg:
    """The first chunk, unless the slot is evicted first (BusyError)."""
    chunk = asyncio.ensure_future(_next(stream, timeout_s, "chunk 0"))
    slot.on_evict = chunk.cancel
    try:
        return await chunk
    except asyncio.CancelledError:
        if not slot.evicted:
            raise  # this receiver itself is being cancelled
        raise BusyError(
            "evicted: no chunk arrived while the reassembly budget was full and another "
            "message was announced; retry later"
        ) from None
    finally:
        slot.on_evict = None


async def _next(subscription: Subscription, timeout_s: float, what: str) -> Msg:
    try:
        return await subscription.next_msg(timeout=timeout_s)
    except nats.errors.TimeoutError as exc:
        raise RequestTimeout(f"{what} did not arrive within {timeout_s:g} s") from exc


def as_bytes(view: memoryview) -> bytes:
    """A byte view typed for nats-py, which annotates payloads as bytes.

    nats-py only takes len() of a payload and concatenates it into the protocol line, which a
    view supports, so the payload is copied once there instead of twice.
    """
    return cast("bytes", view)
