"""Service: one subject served by a Messenger, answering each request with a handler.

A service never dies of a bad message or a failing handler: the requester gets an
`Inferedge-Error` reply, raised on its side as RemoteError. Chunked requests are reassembled
and replies too large for max_payload are chunked (see `chunking`).

Back-pressure: a service built with `refuse_when_full` answers a request that arrives while
`max_in_flight` are already taken in with a `BusyError` reply at once, instead of letting it
wait in the subscription. The subscription's queue then drains as fast as error replies can be
published, so a flood neither grows memory nor makes nats-server cut the connection off as a
slow consumer; what nats-py still drops past the subscription's pending limits is counted.
Refusals are counted by reason and logged at most once per reason per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Final

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from inferedge.core.errors import InferedgeError, one_line
from inferedge.transport.chunking import (
    as_bytes,
    byte_view,
    check_no_protocol_headers,
    fits,
    is_chunked,
    receive_chunked,
    send_chunked,
    unsubscribe_quietly,
)
from inferedge.transport.codec import Payload
from inferedge.transport.errors import BusyError
from inferedge.transport.headers import ERROR
from inferedge.transport.reassembly import ReassemblyBudget
from inferedge.transport.refusals import Refusals

Headers = dict[str, str]
Handler = Callable[[Headers, Payload], Awaitable[tuple[Mapping[str, str], Payload]]]

# An error line longer than this is cut: it travels in a header, not as a report.
_MAX_ERROR_CHARS: Final = 1000

log = logging.getLogger("inferedge.transport.client")

_received_at: ContextVar[float | None] = ContextVar("inferedge_received_at", default=None)


def received_at() -> float | None:
    """When the request a handler is answering arrived (`time.monotonic()`), before it was
    reassembled or waited for a handler slot; None outside a handler.

    A budget the requester sent ("answer within N ms") is measured from here, on this host's
    clock, so the two hosts' clocks never need to agree.
    """
    return _received_at.get()


class Service:
    """A subject being served, with counts of requests `handled`, `failed` and `refused` (busy).

    `stop()` unsubscribes and waits for the requests in flight.
    """

    def __init__(
        self,
        nc: Client,
        budget: ReassemblyBudget,
        handler: Handler,
        concurrency: int,
        max_in_flight: int,
        *,
        refusals: Refusals,
        refuse_when_full: bool = False,
    ) -> None:
        self.subscription: Subscription | None = None
        self.handled = 0
        self.failed = 0
        self.refused = 0
        self.max_in_flight = max_in_flight
        self._refusals = refusals
        self._refuse_when_full = refuse_when_full
        self._nc = nc
        self._budget = budget
        self._handler = handler
        self._handler_slots = asyncio.Semaphore(concurrency)
        # Inline answers hold the subscription, which a service refusing when full must not.
        self._inline = concurrency == 1 and not refuse_when_full
        self._intake = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    async def take(self, msg: Msg) -> None:
        """nats-py's callback: answer a message, in a task of its own unless it can be inline.

        nats-py calls this for one message at a time. A handler that runs alone anyway answers
        a whole message right here, which saves a task switch per request; a chunked message
        waits on the network while reassembled, so it always gets a task.
        """
        arrived = time.monotonic()
        if self._inline and not is_chunked(msg):
            await self._answer(msg, arrived)
            return
        if self._refuse_when_full and self._intake.locked():
            await self._refuse_busy(msg)
            return
        # Waiting here holds further messages in the subscription's bounded queue.
        await self._intake.acquire()
        task = asyncio.create_task(self._answer(msg, arrived))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking requests and answer those taken in; cancel what is left after `grace_s`."""
        self._stopped = True
        subscription, self.subscription = self.subscription, None
        try:
            async with asyncio.timeout(grace_s):
                if subscription is not None:
                    with contextlib.suppress(nats.errors.Error):
                        # Unsubscribes, then waits until the queued messages are answered.
                        await subscription.drain()  # type: ignore[no-untyped-call]
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
        except TimeoutError:
            log.warning("cancelled requests still in flight %g s after stopping", grace_s)
            for task in self._tasks:
                task.cancel()
            if subscription is not None:
                await unsubscribe_quietly(subscription)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._intake.release()

    @property
    def stopped(self) -> bool:
        """Whether `stop()` was called."""
        return self._stopped

    def attach(self, nc: Client) -> None:
        """Answer on `nc`: the connection a Messenger made after this service was created."""
        self._nc = nc

    @property
    def in_flight(self) -> int:
        """Requests taken in and not answered yet (inline ones excluded)."""
        return len(self._tasks)

    async def _refuse_busy(self, msg: Msg) -> None:
        self.refused += 1
        exc = BusyError(
            f"{msg.subject}: {self.max_in_flight} requests are already in flight "
            f"(limit {self.max_in_flight}); retry later"
        )
        self._refusals("busy", one_line(exc))
        if msg.reply:
            await self._reply_error(msg.reply, exc)

    async def _answer(self, msg: Msg, arrived: float) -> None:
        if not msg.reply:
            self._refusals("no_reply", f"dropping a message on {msg.subject}: no reply subject")
            return
        _received_at.set(arrived)
        try:
            headers, payload = await self._open(msg)
            async with self._handler_slots:
                reply_headers, reply_payload = await self._handler(headers, payload)
            await self._send(msg.reply, reply_headers, reply_payload)
            self.handled += 1
        except Exception as exc:
            # The worker keeps serving whatever went wrong; the requester learns what it was.
            self.failed += 1
            # A label per exception class: a bounded set, fixed by the code.
            reason = type(exc).__name__
            expected = isinstance(exc, InferedgeError)
            where = f"request on {msg.subject}: {one_line(exc)}"
            self._refusals(reason, where, exc_info=not expected)
            await self._reply_error(msg.reply, exc)

    async def _open(self, msg: Msg) -> tuple[Headers, Payload]:
        """The headers and payload of a received message, reassembling a chunked one."""
        if is_chunked(msg):
            return await receive_chunked(self._nc, msg, self._budget)
        # nats-py builds a fresh dict per message, so it is the receiver's to keep.
        return msg.headers or {}, msg.data

    async def _send(self, subject: str, headers: Mapping[str, str], payload: Payload) -> None:
        """Publish a reply, chunked when it does not fit max_payload."""
        headers = dict(headers)
        check_no_protocol_headers(headers)
        view = byte_view(payload)
        if fits(headers, view.nbytes, self._nc.max_payload):
            await self._nc.publish(subject, as_bytes(view), headers=headers or None)
            return
        control = await self._nc.subscribe(self._nc.new_inbox())
        try:
            step = self._budget.limits.idle_timeout_s
            await send_chunked(
                self._nc,
                subject,
                headers,
                view,
                control,
                accept_timeout_s=step,
                step_timeout_s=step,
            )
        finally:
            await unsubscribe_quietly(control)

    async def _reply_error(self, subject: str, exc: Exception) -> None:
        line = one_line(exc)[:_MAX_ERROR_CHARS]
        try:
            await self._nc.publish(subject, b"", headers={ERROR: line})
        except nats.errors.Error as publish_error:
            log.warning("cannot send error reply %r: %s", line, one_line(publish_error))
