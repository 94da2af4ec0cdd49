"""The exploration table measured as served: each version on one replica of each pool class.

A row from the profiles (the class's segment times, times the share of the model a request
costs on average at the version's threshold) leaves out what serving adds: the exit heads a
request passes, and each model call's fixed costs, which an emulated board stretches by its
slowdown like the rest. On the example site those rows promised 10 to 40 % more than the
replicas then served, so a target planned at 85 % of the capacity was not met. `inferedge run`
therefore serves every (class, version) the way the site will (`inferedge serve edge`, the
class's slowdown, holding by sleeping) and measures it on the test split: requests one at a
time for the latency (p50, p95), then two in flight, so the replica never waits, for the
throughput. The measured figures replace the profile's in the row (`measured`); its accuracy
stays the version's test accuracy, its energy the profile's estimate where there is one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import aiohttp
import numpy as np

from inferedge.api.site import SiteStage
from inferedge.core.errors import InferedgeError
from inferedge.core.exploration import ExplorationRow
from inferedge.dnn.data import Dataset
from inferedge.local.interruptible import run_interruptible
from inferedge.local.processes import running
from inferedge.local.replay import infer_body
from inferedge.local.runner import Prepared, thread_env
from inferedge.local.serving import broker_and_servers
from inferedge.steps.reporting import Reporter

MIB = 1024 * 1024


def replica_args(
    prepared: Prepared,
    slowdown: float,
    *,
    pool: str,
    name: str,
    cache: Path,
    answer_at: int | None,
    stage: SiteStage | None = None,
) -> list[str]:
    """`inferedge serve edge` flags for one replica of a local site's pool."""
    truncated = [] if answer_at is None else ["--answer-at-exit", str(answer_at)]
    if stage is not None:
        truncated += ["--stage", f"{stage.start}:{stage.end}"]
    return [*truncated,
        "--store", prepared.store_uri,
        "--prefix", prepared.prefix,
        "--manifest-sha256", prepared.manifest_sha256,
        "--port", "0",
        "--cache-dir", str(cache),
        "--emulate-slowdown", repr(slowdown),
        "--emulate-hold", "sleep",
        "--pool", pool,
        "--replica", name,
    ]  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """One row to measure: the version's set, how it is served, and on which class."""

    row: ExplorationRow
    prepared: Prepared
    answer_at: int | None
    pool: str
    """A pool of the row's class (the replica names it; nobody dispatches to it)."""
    slowdown: float


@dataclass(frozen=True)
class Measured:
    """One replica measured: single requests' latencies, and answers a second kept busy."""

    latency_p50_ms: float
    latency_p95_ms: float
    throughput: float


async def _measure(url: str, model: str, data: Dataset, seconds: float) -> Measured:
    """Half of `seconds` one request at a time, half with two in flight."""
    endpoint = f"{url}/v2/models/{model}/infer"
    latencies: list[float] = []
    count = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def one(i: int) -> float:
            sent = time.perf_counter()
            async with session.post(endpoint, json=infer_body(data.x[i % len(data)], str(i))) as r:
                await r.read()
                if r.status != 200:
                    raise InferedgeError(f"measuring {url}: a request got HTTP {r.status}")
            return (time.perf_counter() - sent) * 1000.0

        await one(0)  # the first call after start pays the framework's warm-up
        end = time.perf_counter() + seconds / 2
        while time.perf_counter() < end or len(latencies) < 5:
            latencies.append(await one(count))
            count += 1
        started = time.perf_counter()
        end = started + seconds / 2
        answered = 0

        async def keep_busy() -> None:
            nonlocal count, answered
            while time.perf_counter() < end or answered < 5:
                count += 1
                await one(count)
                answered += 1

        await asyncio.gather(keep_busy(), keep_busy())
        elapsed = time.perf_counter() - started
    p50, p95 = np.percentile(latencies, [50, 95]).tolist()
    return Measured(p50, p95, answered / elapsed)


def table_as_served(
    candidates: Sequence[Candidate],
    data: Dataset,
    *,
    namespace: str,
    pipeline: str,
    logs: Path,
    cache: Path,
    reporter: Reporter,
    threads: int,
    seconds: float,
) -> list[ExplorationRow]:
    """Every candidate's row with its latency and throughput as served, each replica alone
    (the others idle) for `seconds`."""
    logs.mkdir(parents=True, exist_ok=True)
    rows: list[ExplorationRow] = []
    with broker_and_servers(
        namespace, pipeline, {}, logs, env=thread_env(threads), max_payload=8 * MIB,
        start_timeout_s=180.0,
    ) as bus:  # fmt: skip
        servers = [
            bus.server(
                "edge",
                replica_args(
                    c.prepared,
                    c.slowdown,
                    pool=c.pool,
                    name=f"measure-{i}",
                    cache=cache,
                    answer_at=c.answer_at,
                ),
                logs / f"{c.row.device}-{c.row.version}.log",
            )
            for i, c in enumerate(candidates)
        ]
        with running(servers) as started:
            title = f"measuring {len(candidates)} (class, version) pairs as served"
            with reporter.progress(title) as bar:
                for i, (candidate, server) in enumerate(zip(candidates, started, strict=True)):
                    got = run_interruptible(partial(_measure, server.url, pipeline, data, seconds))
                    row = candidate.row
                    rows.append(
                        replace(
                            row,
                            latency_p50_ms=got.latency_p50_ms,
                            latency_p95_ms=got.latency_p95_ms,
                            throughput=got.throughput,
                            measured=True,
                        )
                    )
                    reporter.info(
                        f"{row.device} {row.version}: {got.throughput:.1f} requests/s as served "
                        f"(the profiles said {row.throughput:.1f}), p50 {got.latency_p50_ms:.0f} ms"
                    )
                    bar(i + 1, len(candidates))
    return rows
