"""nats-py's own error log lines come out as one line, never with a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from inferedge.transport.client import Messenger
from inferedge.transport.server import EmbeddedNats


@pytest.mark.asyncio
async def test_an_exception_in_nats_pys_read_loop_is_logged_in_one_line(
    nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    messenger = await Messenger.connect(nats_server.url)
    client: Any = messenger._nc
    parse = client._ps.parse
    failed = asyncio.Event()

    async def broken(data: bytes = b"") -> None:
        # What a reply landing on a request given up at shutdown does: nats-py logs it itself.
        failed.set()
        raise RuntimeError("reply for a request given up\nsecond line")

    client._ps.parse = broken
    with caplog.at_level(logging.ERROR, logger="nats.aio.client"):
        # The server's PONG reaches the broken parser (the flush itself then never completes).
        pinging = asyncio.create_task(client.flush(timeout=30))
        await asyncio.wait_for(failed.wait(), 5.0)
        await asyncio.sleep(0)  # let the read loop log it
        pinging.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinging
    client._ps.parse = parse
    (record,) = [r for r in caplog.records if r.name == "nats.aio.client"]
    assert record.exc_info is None
    assert record.getMessage() == (
        "nats: encountered error: RuntimeError: reply for a request given up"
    )
    await messenger.close()
