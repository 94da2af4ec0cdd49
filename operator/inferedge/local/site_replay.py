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
    latencies_ms: tuple[float, ...]

    @property
    def throughput(self) -> float:
        """Answers a second over the replay."""
        return self.answered / self.seconds if self.seconds > 0 else 0.0

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
    answered = correct = refused = lost = done = 0
    latencies: list[float] = []
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
                    latencies.append((time.perf_counter() - sent) * 1000.0)
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
        latencies_ms=tuple(latencies),
    )
