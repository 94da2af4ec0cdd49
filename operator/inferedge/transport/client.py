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
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from inferedge.core.errors import one_line
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
from inferedge.transport.errors import (
    AuthorizationError,
    NoResponders,
    PermissionDenied,
    RemoteError,
    RequestTimeout,
    TransportError,
)
from inferedge.transport.events import ConnectionEvents
from inferedge.transport.service import Handler, Headers, Service
from inferedge.transport.settings import NatsSettings

__all__ = ["DEFAULT_TIMEOUT_S", "Handler", "Headers", "Messenger", "Service"]

DEFAULT_TIMEOUT_S: Final = 10.0

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
        events = ConnectionEvents(nc)
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
        where = ", ".join(settings.servers)
        try:
            await _connect_unless_refused(nc, options, events, connect_timeout_s)
        except AuthorizationError:
            await _close_quietly(nc)
            raise AuthorizationError(
                f"NATS at {where} refused to sign in this client {settings.signs_in}"
            ) from None
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            reason = one_line(nc.last_error) if nc.last_error else one_line(exc)
            await _close_quietly(nc)
            raise TransportError(
                f"cannot connect to NATS at {where} within "
                f"{connect_timeout_s:g} s ({reason}); is nats-server running? "
                "(INFEREDGE_NATS_URL sets where)"
            ) from exc
        events.up.set()
        events.connected_once = True
        return cls(nc, events, limits or ReassemblyLimits(), settings.inbox_prefix)

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

    async def _round_trip(self) -> None:
        """Wait until the server has handled everything sent so far (and answered a refusal).

        nats-py writes flush()'s PING straight to the socket, ahead of queued commands, so
        the queue is written out first; without that the PONG can beat a SUB or PUB.
        """
        await self._nc._flush_pending(force_flush=True)
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


async def _connect_unless_refused(
    nc: Client, options: dict[str, Any], events: ConnectionEvents, timeout_s: float
) -> None:
    """nats-py's connect(), which retries refused credentials until the timeout; this gives
    up at the first refusal (AuthorizationError) instead."""
    connecting = asyncio.ensure_future(nc.connect(**options))
    refused = asyncio.ensure_future(events.refused.wait())
    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.wait({connecting, refused}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        refused.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connecting
    if events.refused.is_set() and not nc.is_connected:
        raise AuthorizationError("refused")
    connecting.result()  # raises what connect() raised


async def _close_quietly(nc: Client) -> None:
    with contextlib.suppress(nats.errors.Error):
        await nc.close()
