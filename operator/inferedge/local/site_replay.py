"""The test split sent to a site's dispatcher at a rate, open loop, every answer checked.

Requests leave on a Poisson schedule at the offered rate, whatever the site does (a site that
cannot keep up queues or refuses; the schedule does not wait for it). Every request ends one of
three ways, and the three add up to what was sent: answered (200, its prediction compared with
the label), refused (an OIP error status: the site said no), or lost (no answer at all: the
connection broke or the client's timeout passed). `at_s` runs an action at a time into the
replay (the benchmark kills a replica there).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from inferedge.dnn.data import Dataset
from inferedge.local.arrivals import Poisson
from inferedge.local.replay import ReplayError, infer_body, parse_answer


@dataclass(frozen=True)
class SiteReplay:
    """What the replay sent and how each request ended."""

    rate: float
    sent: int
    answered: int
    correct: int
    refused: int
    lost: int
    seconds: float
    """From the first request sent to the last one ended."""
    window_s: float
    """How long requests were sent for."""
    warm_s: float
    """The start of the steady window: the first seconds fill the replicas' queues."""
    sent_steady: int
    """Requests sent in the steady window, [warm_s, window_s]."""
    answered_steady: int
    """Answers that came back in the steady window."""
    latencies_ms: tuple[float, ...]

    @property
    def offered(self) -> float:
        """Requests sent a second in the steady window (Poisson: a few % off the rate)."""
        return self.sent_steady / (self.window_s - self.warm_s)

    @property
    def throughput(self) -> float:
        """Answers a second in the steady window: a site that keeps up answers what is
        offered; one that cannot, what it manages, whatever its backlog does afterwards."""
        return self.answered_steady / (self.window_s - self.warm_s)

    @property
    def accuracy(self) -> float:
        """Share of the answers that were right."""
        return self.correct / self.answered if self.answered else 0.0


def arrival_times(rate: float, seconds: float, seed: int = 0) -> list[float]:
    """Poisson send times at `rate` a second over `seconds`."""
    rng = random.Random(seed)
    times: list[float] = []
    t = 0.0
    for gap in Poisson(1.0 / rate).gaps(rng):
        t += gap
        if t >= seconds:
            return times
        times.append(t)
    return times


async def site_replay(
    base_url: str,
    model: str,
    data: Dataset,
    rate: float,
    seconds: float,
    *,
    at_s: tuple[float, Callable[[], None]] | None = None,
    timeout_s: float = 60.0,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> SiteReplay:
    """Send `data` (cycled) to the site at `base_url` at `rate` for `seconds`."""
    url = f"{base_url}/v2/models/{model}/infer"
    times = arrival_times(rate, seconds, seed)
    warm = min(2.0, seconds / 5)
    answered = correct = refused = lost = done = 0
    latencies: list[float] = []
    ended_at: list[float] = []
    ended = 0.0

    async def send(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal answered, correct, refused, lost, done, ended
        index = i % len(data)
        sent = time.perf_counter()
        try:
            async with session.post(url, json=infer_body(data.x[index], f"site-{i}")) as reply:
                body = await reply.json(content_type=None)
                if reply.status == 200:
                    served = parse_answer(body, int(data.y[index]), 0.0)
                    answered += 1
                    correct += served.prediction == served.label
                    now = time.perf_counter()
                    latencies.append((now - sent) * 1000.0)
                    ended_at.append(now - started)
                else:
                    refused += 1
        except (aiohttp.ClientError, TimeoutError, ReplayError, ValueError):
            lost += 1
        done += 1
        ended = time.perf_counter()
        if progress is not None:
            progress(done, len(times))

    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    if at_s is not None:
        loop.call_later(at_s[0], at_s[1])
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        connector=aiohttp.TCPConnector(limit=0),
    ) as session:
        tasks = []
        for i, at in enumerate(times):
            delay = started + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule itself: requests leave on time
            tasks.append(asyncio.create_task(send(session, i)))
        await asyncio.gather(*tasks)
    return SiteReplay(
        rate=rate,
        sent=len(times),
        answered=answered,
        correct=correct,
        refused=refused,
        lost=lost,
        seconds=max(ended - started, 1e-9),
        window_s=seconds,
        warm_s=warm,
        sent_steady=sum(1 for t in times if t >= warm),
        answered_steady=sum(1 for t in ended_at if warm <= t <= seconds),
        latencies_ms=tuple(latencies),
    )
