"""nats-py's connection callbacks: log lines, the up/down state, and what the server refused.

nats-server answers a publish or subscription the client's identity may not make with an
asynchronous `-ERR 'Permissions Violation ...'` and keeps the connection. The server handles
one connection's commands in order, so once a later PING is answered (a flush), any refusal of
what came before has been recorded here; `Messenger` turns it into PermissionDenied.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Final, Literal

import nats.errors
from nats.aio.client import Client

from inferedge.core.errors import one_line
from inferedge.transport.refusals import RateLimitedLog, Refusals

Operation = Literal["publish", "subscription"]

# nats-py lowercases the server's error line, e.g.
# `nats: permissions violation for subscription to "a.b" using queue "q"`.
_VIOLATION: Final = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"')
_AUTHORIZATION: Final = "authorization violation"
# Refusals remembered per connection; a client that keeps being refused only needs the latest.
_MAX_REMEMBERED: Final = 256

log = logging.getLogger("inferedge.transport.client")


class ConnectionEvents:
    """nats-py's connection callbacks, as log lines; quiet about a close we asked for."""

    def __init__(self, nc: Client, refusals: Refusals | None = None) -> None:
        self.closing = False
        # Messages nats-py dropped (a subscription past its pending limits), counted by reason.
        self.refusals = refusals or Refusals(RateLimitedLog(log, what="dropped"))
        self.connected_once = False
        # Set while connected; nats-py calls `reconnected` only after the server has
        # acknowledged the renewed subscriptions (a PING/PONG after replaying them).
        self.up = asyncio.Event()
        # Set when the server refuses the sign-in before the first connection succeeded.
        self.refused = asyncio.Event()
        self._denied: dict[tuple[Operation, str], None] = {}
        self._nc = nc

    def denied(self, operation: Operation, subject: str) -> bool:
        """Whether the server refused `operation` on `subject` on this connection."""
        return (operation, subject.lower()) in self._denied

    def refusal(self, subject: str, inbox_prefix: str) -> str | None:
        """Why a request to `subject` got no answer, if the server refused its publish or a
        subscription to this client's inboxes; None when it refused neither."""
        if self.denied("publish", subject):
            return f"NATS does not allow this identity to publish to {subject}"
        inboxes = inbox_prefix.lower() + "."
        for operation, where in self._denied:
            if operation == "subscription" and where.startswith(inboxes):
                return (
                    f"NATS does not allow this identity to subscribe to its inboxes {where} "
                    "(is INFEREDGE_NATS_INBOX_PREFIX the one its permissions name?)"
                )
        return None

    def bind(self, nc: Client) -> None:
        """Report on `nc` from now on (a Messenger that connects in the background tries a
        fresh client per attempt)."""
        self._nc = nc

    async def error(self, exc: Exception) -> None:
        if isinstance(exc, nats.errors.SlowConsumerError):
            # One per dropped message: a flood must cost a count, not a log line each.
            self.refusals("slow_consumer", f"NATS client dropped a message on {exc.subject}")
            return
        text = str(exc).lower()
        if match := _VIOLATION.search(text):
            operation: Operation = "publish" if match.group(1) == "publish" else "subscription"
            self._denied[(operation, match.group(2))] = None
            if len(self._denied) > _MAX_REMEMBERED:
                del self._denied[next(iter(self._denied))]
            log.warning("NATS refused this identity's %s to %r", operation, match.group(2))
            return
        if not self.connected_once:
            if _AUTHORIZATION in text or isinstance(exc, nats.errors.AuthorizationError):
                self.refused.set()
            # Before the first connection, connect() reports the failure once, in one line.
            return
        if not self.closing:
            log.warning("NATS: %s", one_line(exc))

    async def disconnected(self) -> None:
        self.up.clear()
        # A new connection starts with a clean slate: its permissions may have changed.
        self._denied.clear()
        if not self.closing and self.connected_once:
            log.warning("disconnected from NATS; reconnecting")

    async def reconnected(self) -> None:
        self.up.set()
        url = self._nc.connected_url
        log.warning("reconnected to NATS at %s", url.netloc if url else "?")

    async def closed(self) -> None:
        self.up.clear()
        log.info("NATS connection closed")
