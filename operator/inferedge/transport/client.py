"""Messenger: request/reply and serving over NATS, with chunking and error replies built in.

A Messenger owns one nats-py connection that reconnects by itself, forever, a fraction of a
second apart; disconnects and reconnects are logged. Messages larger than the server's
max_payload are chunked transparently in both directions (see `chunking`). A service never
dies of a bad message or a failing handler: the requester gets an `Inferedge-Error` reply,
raised on its side as RemoteError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Final, Self

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from inferedge.core.errors import InferedgeError, one_line
from inferedge.transport.chunking import (
    ReassemblyBudget,
    ReassemblyLimits,
    as_bytes,
    byte_view,
    check_no_protocol_headers,
    check_reply,
    fits,
    is_chunked,
    receive_chunked,
    send_chunked,
    unsubscribe_quietly,
)
from inferedge.transport.codec import Payload
from inferedge.transport.errors import NoResponders, RemoteError, RequestTimeout, TransportError
from inferedge.transport.headers import ERROR
from inferedge.transport.settings import NatsSettings

Headers = dict[str, str]
Handler = Callable[[Headers, Payload], Awaitable[tuple[Mapping[str, str], Payload]]]

DEFAULT_TIMEOUT_S: Final = 10.0
# An error line longer than this is cut: it travels in a header, not as a report.
_MAX_ERROR_CHARS: Final = 1000

log = logging.getLogger(__name__)


class Messenger:
    """One NATS connection: `request()` as a client, `serve()` as a worker. Use `connect()`."""

    def __init__(self, nc: Client, events: _ConnectionEvents, limits: ReassemblyLimits) -> None:
        self._nc = nc
        self._events = events
        self.budget = ReassemblyBudget(limits)
        # Services stay alive through their subscription's callback; stopped ones drop out.
        self._services: weakref.WeakSet[Service] = weakref.WeakSet()

    @classmethod
    async def connect(
        cls,
        url: str | None = None,
        *,
        name: str = "inferedge",
        settings: NatsSettings | None = None,
        limits: ReassemblyLimits | None = None,
        reconnect_wait_s: float = 0.25,
        connect_timeout_s: float = 10.0,
    ) -> Messenger:
        """Connect to NATS; servers and credentials come from `settings` or the environment.

        `url` overrides the URL from the environment (never the credentials). The first
        connection is given `connect_timeout_s`; after that, the client reconnects forever.
        """
        settings = settings or NatsSettings.from_env(url=url)
        nc = Client()
        events = _ConnectionEvents(nc)
        # nats-py annotates the waits as int but sleeps on them, so fractions of a second work.
        options: dict[str, Any] = {
            **settings.connect_options(),
            "name": name,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": reconnect_wait_s,
            "connect_timeout": min(2.0, connect_timeout_s),
            "error_cb": events.error,
            "disconnected_cb": events.disconnected,
            "reconnected_cb": events.reconnected,
            "closed_cb": events.closed,
        }
        try:
            await asyncio.wait_for(nc.connect(**options), connect_timeout_s)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            reason = one_line(nc.last_error) if nc.last_error else one_line(exc)
            with contextlib.suppress(nats.errors.Error):
                await nc.close()
            raise TransportError(
                f"cannot connect to NATS at {', '.join(settings.servers)} within "
                f"{connect_timeout_s:g} s ({reason}); is nats-server running? "
                "(INFEREDGE_NATS_URL sets where)"
            ) from exc
        events.up.set()
        events.connected_once = True
        return cls(nc, events, limits or ReassemblyLimits())

    @property
    def max_payload(self) -> int:
        """The largest message the connected server accepts, headers included."""
        return self._nc.max_payload

    @property
    def is_connected(self) -> bool:
        """Whether the connection is up, with its subscriptions in place (not reconnecting)."""
        return self._events.up.is_set()

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the connection is up; after a reconnect, until its subscriptions are
        renewed on the server, so requests reach this Messenger's services again."""
        try:
            await asyncio.wait_for(self._events.up.wait(), timeout)
        except TimeoutError as exc:
            raise TransportError(f"not connected to NATS within {timeout:g} s") from exc

    async def request(
        self,
        subject: str,
        headers: Mapping[str, str],
        payload: Payload,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> tuple[Headers, Payload]:
        """Send a request and return the reply's headers and payload.

        A payload that does not fit max_payload is chunked; so may the reply be. The payload
        is sent before this returns, so a view of a live array may change afterwards.
        Raises RemoteError (the service answered with an error), NoResponders, RequestTimeout
        (no complete reply within `timeout` seconds), WireError or TransportError.
        """
        headers = dict(headers)
        check_no_protocol_headers(headers)
        view = byte_view(payload)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            if fits(headers, view.nbytes, self.max_payload):
                reply = await self._nc.request(
                    subject, as_bytes(view), timeout=timeout, headers=headers or None
                )
            else:
                async with asyncio.timeout_at(deadline):
                    reply = await self._chunked_request(subject, headers, view, timeout)
            check_reply(reply, subject)
            if not is_chunked(reply):
                return reply.headers or {}, reply.data
            async with asyncio.timeout_at(deadline):
                return await receive_chunked(self._nc, reply, self.budget)
        except TimeoutError as exc:
            raise RequestTimeout(f"{subject}: no reply within {timeout:g} s") from exc
        except nats.errors.NoRespondersError as exc:
            raise NoResponders(f"{subject}: no service is subscribed") from exc
        except nats.errors.Error as exc:
            raise TransportError(f"{subject}: {one_line(exc)}") from exc

    async def serve(
        self,
        subject: str,
        queue: str | None,
        handler: Handler,
        *,
        concurrency: int = 1,
        max_in_flight: int = 64,
    ) -> Service:
        """Answer requests on `subject` with `handler` until the Service is stopped.

        Subscribers sharing a `queue` group split the requests between them; with None every
        subscriber gets every request. At most `concurrency` handler calls run at once and at
        most `max_in_flight` requests are taken in (being reassembled or waiting); beyond that
        they wait in the subscription. Any exception becomes an `Inferedge-Error` reply.
        """
        if concurrency < 1 or max_in_flight < concurrency:
            raise TransportError(
                f"concurrency={concurrency}, max_in_flight={max_in_flight}: "
                "expected 1 <= concurrency <= max_in_flight"
            )
        service = Service(self._nc, self.budget, handler, concurrency, max_in_flight)
        try:
            service.subscription = await self._nc.subscribe(
                subject, queue=queue or "", cb=service.take
            )
            # A round trip, so requests reach this service once serve() returns. nats-py
            # writes flush()'s PING straight to the socket, ahead of the queued SUB, so the
            # queue is written out first; without that the PONG can beat the SUB.
            await self._nc._flush_pending(force_flush=True)
            await self._nc.flush()
        except nats.errors.Error as exc:
            raise TransportError(f"cannot serve {subject}: {one_line(exc)}") from exc
        self._services.add(service)
        return service

    async def broadcast(
        self, subject: str, payload: bytes, *, expect: int, timeout: float
    ) -> list[bytes | RemoteError]:
        """Publish one small request to every subscriber of `subject` and gather the replies.

        Returns after `expect` replies, or at `timeout` with those that came (possibly none);
        a subscriber's error reply is returned as a RemoteError in its place.
        """
        if expect < 1:
            raise TransportError(f"expect must be >= 1, got {expect}")
        inbox = await self._nc.subscribe(self._nc.new_inbox())
        replies: list[bytes | RemoteError] = []
        try:
            await self._nc.publish(subject, payload, reply=inbox.subject)
            deadline = asyncio.get_running_loop().time() + timeout
            while len(replies) < expect:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    msg = await inbox.next_msg(timeout=left)
                except (TimeoutError, nats.errors.TimeoutError):
                    break
                try:
                    check_reply(msg, subject)
                    replies.append(msg.data)
                except RemoteError as exc:
                    replies.append(exc)
        except nats.errors.Error as exc:
            raise TransportError(f"{subject}: {one_line(exc)}") from exc
        finally:
            await unsubscribe_quietly(inbox)
        return replies

    async def close(self) -> None:
        """Stop every service (answering what is in flight), then close the connection."""
        for service in list(self._services):
            await service.stop()
        self._events.closing = True
        await self._nc.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _chunked_request(
        self, subject: str, headers: Headers, payload: memoryview, timeout: float
    ) -> Msg:
        control = await self._nc.subscribe(self._nc.new_inbox())
        try:
            await send_chunked(
                self._nc,
                subject,
                headers,
                payload,
                control,
                accept_timeout_s=timeout,
                step_timeout_s=min(timeout, self.budget.limits.idle_timeout_s),
            )
            # The caller's deadline bounds this wait.
            return await control.next_msg(timeout=None)
        finally:
            await unsubscribe_quietly(control)


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


class _ConnectionEvents:
    """nats-py's connection callbacks, as log lines; quiet about a close we asked for."""

    def __init__(self, nc: Client) -> None:
        self.closing = False
        self.connected_once = False
        # Set while connected; nats-py calls `reconnected` only after the server has
        # acknowledged the renewed subscriptions (a PING/PONG after replaying them).
        self.up = asyncio.Event()
        self._nc = nc

    async def error(self, exc: Exception) -> None:
        # Before the first connection, connect() reports the failure once, in one line.
        if not self.closing and self.connected_once:
            log.warning("NATS: %s", one_line(exc))

    async def disconnected(self) -> None:
        self.up.clear()
        if not self.closing and self.connected_once:
            log.warning("disconnected from NATS; reconnecting")

    async def reconnected(self) -> None:
        self.up.set()
        url = self._nc.connected_url
        log.warning("reconnected to NATS at %s", url.netloc if url else "?")

    async def closed(self) -> None:
        self.up.clear()
        log.info("NATS connection closed")
