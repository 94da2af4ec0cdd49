"""One attempt at a first NATS connection, giving up at the first refused sign-in."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats.errors
from nats.aio.client import Client

from inferedge.core.errors import one_line
from inferedge.transport.errors import AuthorizationError, TransportError
from inferedge.transport.events import ConnectionEvents
from inferedge.transport.settings import NatsSettings


async def attempt(
    settings: NatsSettings, options: dict[str, Any], events: ConnectionEvents, timeout_s: float
) -> Client:
    """One connection attempt on a fresh client; AuthorizationError or TransportError."""
    nc = Client()
    events.bind(nc)
    where = ", ".join(settings.servers)
    try:
        await _connect_unless_refused(nc, options, events, timeout_s)
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
            f"{timeout_s:g} s ({reason}); is nats-server running? "
            "(INFEREDGE_NATS_URL sets where)"
        ) from exc
    events.up.set()
    events.connected_once = True
    return nc


_CANCEL_WAIT_S = 1.0


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
            # nats-py's connect() can swallow a cancellation and go on retrying: wait for it a
            # bounded time only, or a failed first attempt could hang its caller for good.
            await asyncio.wait({connecting}, timeout=_CANCEL_WAIT_S)
    if events.refused.is_set() and not nc.is_connected:
        raise AuthorizationError("refused")
    if not connecting.done():
        raise TimeoutError("nats-py's connect() did not stop when cancelled")
    connecting.result()  # raises what connect() raised


async def _close_quietly(nc: Client) -> None:
    with contextlib.suppress(nats.errors.Error):
        await nc.close()
