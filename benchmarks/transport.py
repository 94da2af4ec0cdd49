"""Offload overhead: Messenger against a raw nats-py request/reply of the same bytes.

For each activation size, the raw baseline is a plain nats-py request of that many bytes whose
subscriber answers `ok`, sent as one message: on the 8 MiB server where it fits, else on one
with a 64 MiB max_payload (nats-server's ceiling). The Messenger
rows time the whole offload path: encode a float32 tensor, request (chunked where it does not
fit), decode in the handler, answer small. They run on an 8 MiB server (the local default)
and on a 1 MiB server (NATS's default, so 1 MiB and up are chunked). fp16 and int8 rows send
half and a quarter of the bytes. Requester and responder share one process and event loop, as
they would in a test; every case runs once per round, in a shuffled order, so drift and
leftovers of one case hit all alike.
Target: Messenger raw within 20% of the raw round trip (ratio <= 1.20).

A second baseline, `nats-py+hdrs`, is the raw request carrying the headers our wire format
sends (request id, plan hash, dtype, shape, encoding): nats-py's own cost of headers, which
no code of ours can avoid while the format puts its metadata there, shown apart from ours.

Prints a table and, with --json, the same figures as JSON. It reports; it never fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import nats
import numpy as np
from nats.aio.client import Client
from nats.aio.msg import Msg

from inferedge.transport.chunking import fits
from inferedge.transport.client import Headers, Messenger
from inferedge.transport.codec import Encoding, Payload, decode, encode
from inferedge.transport.headers import MiB
from inferedge.transport.server import MAX_MAX_PAYLOAD, EmbeddedNats
from inferedge.transport.subjects import QUEUE_GROUP, subject

KiB = 1024
SIZES = (10 * KiB, 100 * KiB, MiB, 4 * MiB, 16 * MiB)
SERVERS = {"8MiB": 8 * MiB, "1MiB": MiB}
ENCODINGS: tuple[Encoding, ...] = ("raw", "fp16", "int8")
RAW_SUBJECT = "bench.raw"
SUBJECT = subject("bench", "transport", "offload")
PLAN = "0123456789abcdef"
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Row:
    """One measured case: median round trip, and its ratio to the raw one of the same size."""

    case: str
    server: str
    encoding: str
    size_bytes: int
    wire_bytes: int
    chunked: bool
    median_ms: float
    raw_median_ms: float
    ratio: float


async def summary(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
    """The benchmark's handler: decode the activation (as a cloud part would), answer small."""
    decode(headers, payload)
    return {}, b"ok"


async def run(sizes: tuple[int, ...], warmup: int, repeats: int) -> list[Row]:
    """Time every case for every size; cases alternate within each round."""
    async with (
        EmbeddedNats(max_payload=MAX_MAX_PAYLOAD) as wide,
        EmbeddedNats(max_payload=SERVERS["8MiB"]) as default,
        EmbeddedNats(max_payload=SERVERS["1MiB"]) as small,
    ):
        connections: list[Client] = []
        raw_requesters: dict[str, Client] = {}
        for name, server in (("64MiB", wide), ("8MiB", default)):
            requester, responder = await nats.connect(server.url), await nats.connect(server.url)
            connections += [requester, responder]
            await responder.subscribe(RAW_SUBJECT, cb=_answer_ok(responder))
            await responder.flush()
            raw_requesters[name] = requester
        messengers: list[Messenger] = []
        clients: dict[str, Messenger] = {}
        for name, server in (("8MiB", default), ("1MiB", small)):
            worker = await Messenger.connect(server.url, name=f"bench-worker-{name}")
            await worker.serve(SUBJECT, QUEUE_GROUP, summary)
            clients[name] = await Messenger.connect(server.url, name=f"bench-client-{name}")
            messengers += [worker, clients[name]]
        try:
            rows: list[Row] = []
            for size in sizes:
                # The baseline sends the same bytes as one message, on the 8 MiB server
                # when they fit there.
                raw_server = "8MiB" if size < SERVERS["8MiB"] else "64MiB"
                rows += await _measure_size(
                    size,
                    raw_server=raw_server,
                    raw_requester=raw_requesters[raw_server],
                    clients=clients,
                    warmup=warmup,
                    repeats=repeats,
                )
            return rows
        finally:
            for messenger in messengers:
                await messenger.close()
            for connection in connections:
                await connection.close()


def _answer_ok(responder: Client) -> Callable[[Msg], Awaitable[None]]:
    async def answer(msg: Msg) -> None:
        await responder.publish(msg.reply, b"ok")

    return answer


async def _measure_size(
    size: int,
    *,
    raw_server: str,
    raw_requester: Client,
    clients: dict[str, Messenger],
    warmup: int,
    repeats: int,
) -> list[Row]:
    tensor = np.random.default_rng(size).normal(size=size // 4).astype(np.float32)
    raw_payload = bytes(size)

    async def raw() -> None:
        await raw_requester.request(RAW_SUBJECT, raw_payload, timeout=TIMEOUT_S)

    wire_headers, _ = encode(tensor, request_id="bench", plan_hash=PLAN, encoding="raw")

    async def raw_with_headers() -> None:
        await raw_requester.request(
            RAW_SUBJECT, raw_payload, timeout=TIMEOUT_S, headers=dict(wire_headers)
        )

    def offload(client: Messenger, encoding: Encoding) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            headers, payload = encode(tensor, request_id="bench", plan_hash=PLAN, encoding=encoding)
            await client.request(SUBJECT, headers, payload, timeout=TIMEOUT_S)

        return call

    offloads = {
        (server, encoding): offload(clients[server], encoding)
        for server in SERVERS
        for encoding in ENCODINGS
    }
    baseline, with_headers = ("raw nats-py", "-"), ("nats-py+hdrs", "-")
    calls: dict[tuple[str, str], Callable[[], Awaitable[None]]] = {
        baseline: raw,
        with_headers: raw_with_headers,
    }
    for pair, call in offloads.items():
        calls[pair] = call
    times: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    order = list(calls)
    shuffler = random.Random(size)
    for round_index in range(warmup + repeats):
        # A fresh order each round: whatever one case leaves behind (freed buffers, cold
        # caches) falls on every other case alike.
        shuffler.shuffle(order)
        for key in order:
            elapsed = await _time_ms(calls[key])
            if round_index >= warmup:
                times[key].append(elapsed)
    raw_ms = statistics.median(times[baseline])
    shown = round(raw_ms, 3)
    headers_ms = statistics.median(times[with_headers])
    rows = [
        Row("raw nats-py", raw_server, "-", size, size, False, shown, shown, 1.0),
        Row("nats-py+hdrs", raw_server, "-", size, size, False, round(headers_ms, 3), shown,
            round(headers_ms / raw_ms, 3)),
    ]  # fmt: skip
    for server, encoding in offloads:
        headers, payload = encode(tensor, request_id="bench", plan_hash=PLAN, encoding=encoding)
        median = statistics.median(times[server, encoding])
        rows.append(
            Row(
                case="messenger",
                server=server,
                encoding=encoding,
                size_bytes=size,
                wire_bytes=len(payload),
                chunked=not fits(headers, len(payload), SERVERS[server]),
                median_ms=round(median, 3),
                raw_median_ms=shown,
                ratio=round(median / raw_ms, 3),
            )
        )
    return rows


async def _time_ms(call: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await call()
    return (time.perf_counter() - start) * 1e3


def print_table(rows: list[Row]) -> None:
    """The rows as a fixed-width table (no brackets: JSON follows it on stdout)."""
    print(
        f"{'size':>9} {'case':<12} {'server':<6} {'enc':<5} {'wire':>9} {'chunked':<7} "
        f"{'median ms':>10} {'raw ms':>8} {'ratio':>6}"
    )
    for row in rows:
        print(
            f"{_size(row.size_bytes):>9} {row.case:<12} {row.server:<6} {row.encoding:<5} "
            f"{_size(row.wire_bytes):>9} {'yes' if row.chunked else 'no':<7} "
            f"{row.median_ms:>10.2f} {row.raw_median_ms:>8.2f} {row.ratio:>6.2f}"
        )


def _size(n: int) -> str:
    if n >= MiB and n % MiB == 0:
        return f"{n // MiB} MiB"
    if n >= KiB:
        return f"{n / KiB:.0f} KiB"
    return f"{n} B"


def main() -> None:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30, help="Timed rounds per size.")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed rounds first.")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES), help="Activation sizes in bytes."
    )
    parser.add_argument("--json", action="store_true", help="Also print the results as JSON.")
    args = parser.parse_args()
    if any(size <= 0 or size % 4 for size in args.sizes):
        parser.error("--sizes: each must be a positive multiple of 4 (float32 tensors)")
    logging.basicConfig(level=logging.WARNING)
    rows = asyncio.run(run(tuple(args.sizes), args.warmup, args.repeats))
    print_table(rows)
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))


if __name__ == "__main__":
    main()
