"""Service: one subject served by a Messenger, answering each request with a handler.

A service never dies of a bad message or a failing handler: the requester gets an
`Inferedge-Error` reply, raised on its side as RemoteError. Chunked requests are reassembled
and replies too large for max_payload are chunked (see `chunking`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from inferedge.core.errors import InferedgeError, one_line
from inferedge.transport.chunking import (
    ReassemblyBudget,
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
from inferedge.transport.headers import ERROR

Headers = dict[str, str]
Handler = Callable[[Headers, Payload], Awaitable[tuple[Mapping[str, str], Payload]]]

# An error line longer than this is cut: it travels in a header, not as a report.
_MAX_ERROR_CHARS: Final = 1000

log = logging.getLogger("inferedge.transport.client")


class Service:
    """A subject being served, with counts of requests `handled` and `failed`.

    `stop()` unsubscribes and waits for the requests in flight.
    """

    def __init__(
        self,
        nc: Client,
        budget: ReassemblyBudget,
        handler: Handler,
        concurrency: int,
        max_in_flight: int,
    ) -> None:
        self.subscription: Subscription | None = None
        self.handled = 0
        self.failed = 0
        self._nc = nc
        self._budget = budget
        self._handler = handler
        self._handler_slots = asyncio.Semaphore(concurrency)
        self._inline = concurrency == 1
        self._intake = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()

    async def take(self, msg: Msg) -> None:
        """nats-py's callback: answer a message, in a task of its own unless it can be inline.

        nats-py calls this for one message at a time. A handler that runs alone anyway answers
        a whole message right here, which saves a task switch per request; a chunked message
        waits on the network while reassembled, so it always gets a task.
        """
        if self._inline and not is_chunked(msg):
            await self._answer(msg)
            return
        # Waiting here holds further messages in the subscription's bounded queue.
        await self._intake.acquire()
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking requests and answer those taken in; cancel what is left after `grace_s`."""
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

    async def _answer(self, msg: Msg) -> None:
        if not msg.reply:
            log.warning("dropping a message on %s: it has no reply subject", msg.subject)
            return
        try:
            headers, payload = await self._open(msg)
            async with self._handler_slots:
                reply_headers, reply_payload = await self._handler(headers, payload)
            await self._send(msg.reply, reply_headers, reply_payload)
            self.handled += 1
        except Exception as exc:
            # The worker keeps serving whatever went wrong; the requester learns what it was.
            self.failed += 1
            if isinstance(exc, InferedgeError):
                log.warning("request on %s refused: %s", msg.subject, one_line(exc))
            else:
                log.exception("request on %s failed", msg.subject)
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
