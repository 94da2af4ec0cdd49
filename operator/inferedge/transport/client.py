"""Messenger: request/reply and serving over NATS, with chunking and error replies built in.

A Messenger owns one nats-py connection that reconnects by itself, forever, a fraction of a
second apart; disconnects and reconnects are logged. With `retry_in_background`, a first
connection that fails does not fail `connect()`: the Messenger comes up unconnected (requests
fail at once as not connected, services are subscribed once it connects) and keeps trying.
Messages larger than the server's max_payload are chunked transparently in both directions
(see `chunking`). A service never dies of a bad message or a failing handler: the requester
gets an `Inferedge-Error` reply, raised on its side as RemoteError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from inferedge.core.errors import one_line
from inferedge.transport.chunking import (
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
from inferedge.transport.connecting import attempt
from inferedge.transport.errors import (
    AuthorizationError,
    NoResponders,
    PermissionDenied,
    RemoteError,
    RequestTimeout,
    TransportError,
)
from inferedge.transport.events import ConnectionEvents
from inferedge.transport.library_log import quiet_library_tracebacks
from inferedge.transport.reassembly import ReassemblyBudget, ReassemblyLimits
from inferedge.transport.refusals import RateLimitedLog, Refusals
from inferedge.transport.service import Handler, Headers, Service
from inferedge.transport.settings import NatsSettings

__all__ = ["DEFAULT_TIMEOUT_S", "Handler", "Headers", "Messenger", "Service"]

DEFAULT_TIMEOUT_S: Final = 10.0
# nats-py's own per-subscription defaults are 512 Ki messages and 128 MiB.
DEFAULT_PENDING_MSGS: Final = 65536
DEFAULT_PENDING_BYTES: Final = 64 * 1024 * 1024
# Background connection attempts back off up to this far apart.
_MAX_RETRY_WAIT_S: Final = 2.0

log = logging.getLogger(__name__)


class Messenger:
    """One NATS connection: `request()` as a client, `serve()` as a worker. Use `connect()`."""

    def __init__(
        self,
        nc: Client,
        events: ConnectionEvents,
        limits: ReassemblyLimits,
        inbox_prefix: str | None = None,
    ) -> None:
        self._nc = nc
        self._events = events
        self._inbox_prefix = inbox_prefix or "_INBOX"
        self.budget = ReassemblyBudget(limits, events.refusals)
        self.refusals = events.refusals
        """What this connection's services and nats-py refused or dropped, by reason."""
        # Services stay alive through their subscription's callback; stopped ones drop out.
        self._services: weakref.WeakSet[Service] = weakref.WeakSet()
        # Services asked for before the first connection, subscribed once it is up.
        self._deferred: list[tuple[str, str | None, Service, tuple[int, int]]] = []
        self._connecting: asyncio.Task[None] | None = None

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
        retry_in_background: bool = False,
    ) -> Messenger:
        """Connect to NATS; servers and credentials come from `settings` or the environment.

        `url` overrides the URL from the environment (never the credentials). The first
        connection is given `connect_timeout_s`; after that, the client reconnects forever.
        With `retry_in_background`, an unreachable server is not an error: the Messenger is
        returned unconnected and connects when the server appears (refused credentials still
        raise AuthorizationError at once).
        """
        quiet_library_tracebacks()
        settings = settings or NatsSettings.from_env(url=url)
        events = ConnectionEvents(Client(), Refusals(RateLimitedLog(log)))
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
        limits = limits or ReassemblyLimits()
        # In the background mode a missing broker must not hold the caller for long.
        first_s = min(connect_timeout_s, 2.0) if retry_in_background else connect_timeout_s
        try:
            nc = await attempt(settings, options, events, first_s)
        except AuthorizationError:
            raise  # wrong credentials do not fix themselves: fail now, loudly
        except TransportError as exc:
            if not retry_in_background:
                raise
            log.warning("%s; carrying on without it, connecting in the background", exc)
            messenger = cls(Client(), events, limits, settings.inbox_prefix)
            messenger._connecting = asyncio.create_task(
                messenger._connect_later(settings, options, reconnect_wait_s, connect_timeout_s)
            )
            return messenger
        return cls(nc, events, limits, settings.inbox_prefix)

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
            async with asyncio.timeout(timeout):
                if self._connecting is not None:
                    # A first connection made in the background is up only once the services
                    # asked for meanwhile are subscribed, which that task does last.
                    await asyncio.shield(self._connecting)
                await self._events.up.wait()
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
        self._check_connected_once(subject)
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
            # A refused publish or inbox subscription looks like silence; say which it was.
            refusal = self._events.refusal(subject, self._inbox_prefix)
            if refusal is not None:
                raise PermissionDenied(f"{subject}: {refusal}") from exc
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
        refuse_when_full: bool = False,
        pending_msgs_limit: int = DEFAULT_PENDING_MSGS,
        pending_bytes_limit: int = DEFAULT_PENDING_BYTES,
    ) -> Service:
        """Answer requests on `subject` with `handler` until the Service is stopped.

        Subscribers sharing a `queue` group split the requests between them; with None every
        subscriber gets every request. At most `concurrency` handler calls run at once and at
        most `max_in_flight` requests are taken in (being reassembled or waiting); beyond that
        they wait in the subscription, or with `refuse_when_full` get a BusyError reply at once.
        Past the subscription's pending limits nats-py drops messages (counted in `refusals`
        as `slow_consumer`) rather than let nats-server cut the connection off. Any exception
        becomes an `Inferedge-Error` reply. Before the first connection (`retry_in_background`)
        the service is returned at once and subscribed when the connection comes up.
        """
        if concurrency < 1 or max_in_flight < concurrency:
            raise TransportError(
                f"concurrency={concurrency}, max_in_flight={max_in_flight}: "
                "expected 1 <= concurrency <= max_in_flight"
            )
        service = Service(
            self._nc,
            self.budget,
            handler,
            concurrency,
            max_in_flight,
            refusals=self.refusals,
            refuse_when_full=refuse_when_full,
        )
        pending = (pending_msgs_limit, pending_bytes_limit)
        if not self._events.connected_once:
            self._deferred.append((subject, queue, service, pending))
            self._services.add(service)
            return service
        try:
            service.subscription = await self._nc.subscribe(
                subject,
                queue=queue or "",
                cb=service.take,
                pending_msgs_limit=pending[0],
                pending_bytes_limit=pending[1],
            )
            # A round trip, so requests reach this service once serve() returns.
            await self._round_trip()
        except nats.errors.Error as exc:
            raise TransportError(f"cannot serve {subject}: {one_line(exc)}") from exc
        if self._events.denied("subscription", subject):
            await service.stop()
            group = f" in queue group {queue}" if queue else ""
            raise PermissionDenied(
                f"cannot serve {subject}: NATS does not allow this identity to subscribe "
                f"to it{group}"
            )
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
        self._check_connected_once(subject)
        inbox = await self._nc.subscribe(self._nc.new_inbox())
        replies: list[bytes | RemoteError] = []
        try:
            await self._nc.publish(subject, payload, reply=inbox.subject)
            # Broadcasts are rare (reloads): a round trip makes a refusal an error, not silence.
            await self._round_trip()
            for operation, where in (("subscription", inbox.subject), ("publish", subject)):
                if self._events.denied(operation, where):  # type: ignore[arg-type]
                    raise PermissionDenied(
                        f"{subject}: NATS does not allow this identity's {operation} to {where}"
                    )
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
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        for service in list(self._services):
            await service.stop()
        self._events.closing = True
        if self._events.connected_once:
            await self._nc.close()

    def _check_connected_once(self, subject: str) -> None:
        if not self._events.connected_once:
            raise TransportError(
                f"{subject}: not connected to NATS yet (connecting in the background)"
            )

    async def _connect_later(
        self,
        settings: NatsSettings,
        options: dict[str, Any],
        wait_s: float,
        connect_timeout_s: float,
    ) -> None:
        """Try to connect until it works, then subscribe the services asked for meanwhile."""
        failures = RateLimitedLog(log, interval_s=30.0, what="still not connected")
        while True:
            await asyncio.sleep(wait_s)
            wait_s = min(wait_s * 2, _MAX_RETRY_WAIT_S)
            try:
                nc = await attempt(settings, options, self._events, connect_timeout_s)
            except TransportError as exc:
                failures("connect", one_line(exc))
                continue
            break
        self._nc = nc
        url = nc.connected_url
        log.warning("connected to NATS at %s", url.netloc if url else "?")
        deferred, self._deferred = self._deferred, []
        for subject, queue, service, pending in deferred:
            if service.stopped:
                continue
            service.attach(nc)
            try:
                service.subscription = await nc.subscribe(
                    subject,
                    queue=queue or "",
                    cb=service.take,
                    pending_msgs_limit=pending[0],
                    pending_bytes_limit=pending[1],
                )
            except nats.errors.Error as exc:
                log.error("cannot serve %s: %s", subject, one_line(exc))
        with contextlib.suppress(nats.errors.Error):
            await self._round_trip()
        for subject, queue, _, _ in deferred:
            if self._events.denied("subscription", subject):
                group = f" in queue group {queue}" if queue else ""
                log.error(
                    "cannot serve %s: NATS does not allow this identity to subscribe to it%s",
                    subject,
                    group,
                )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _round_trip(self) -> None:
        """Wait until the server has handled everything sent so far (and answered a refusal).

        nats-py writes flush()'s PING straight to the socket, ahead of queued commands, so
        the queue is written out first; without that the PONG can beat a SUB or PUB.
        """
        await self._nc._flush_pending(force_flush=True)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # _flush_pending swallows CancelledError: re-raise it, or a Ctrl-C (asyncio.run
            # cancels the main task) or a timeout that lands here would be lost.
            raise asyncio.CancelledError
        await self._nc.flush()

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
