"""Replay a split through a running edge for as long as a link trace lasts, and watch it adapt.

The test split is sent closed-loop, one request at a time, over and over, from the trace's
origin until its end, through the edge's OIP v2 API as a user's client would. Each answer is
kept with the moment it was sent (seconds into the trace) and its round trip. Meanwhile the
edge's GET /adaptation is read every `poll_s`, for the timeline: the link it believes in, the
split it serves and its switches. A request the edge fails (an HTTP error, no answer) is counted
as failed and the replay goes on: a run measures failures, it does not stop at the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from pydantic import ValidationError

from inferedge.api.adaptation import AdaptationReport
from inferedge.core.errors import one_line
from inferedge.dnn.data import Dataset
from inferedge.local.replay import OFFLOAD_BYTES, ReplayError, Served, infer_body, metric_sum
from inferedge.local.replay import parse_answer as parse_served


@dataclass(frozen=True)
class TimedAnswer:
    """One request of a trace replay: when it left, how long it took, and what came back."""

    t_s: float
    client_ms: float
    served: Served | None
    """None when the request failed."""
    error: str | None = None


@dataclass(frozen=True)
class Observed:
    """The edge's adapter as read at `t_s` seconds into the trace."""

    t_s: float
    report: AdaptationReport


@dataclass(frozen=True)
class TraceReplayed:
    """Every request of one replay over a trace, the adapter's timeline, and the bytes sent."""

    answers: tuple[TimedAnswer, ...]
    timeline: tuple[Observed, ...]
    offload_bytes: float
    late_start_s: float
    """How far into the trace the first request left (0 unless the edge started late)."""


async def _post(
    session: aiohttp.ClientSession, url: str, data: Dataset, i: int, t_s: float
) -> TimedAnswer:
    body = infer_body(data.x[i % len(data)], f"trace-{i}")
    sent = time.perf_counter()
    try:
        async with session.post(url, json=body) as response:
            answer = await response.json(content_type=None)
            client_ms = (time.perf_counter() - sent) * 1000.0
            if response.status != 200:
                return TimedAnswer(t_s, client_ms, None, f"HTTP {response.status}")
        return TimedAnswer(
            t_s, client_ms, parse_served(answer, int(data.y[i % len(data)]), client_ms)
        )
    except (aiohttp.ClientError, TimeoutError, ReplayError) as exc:
        return TimedAnswer(t_s, (time.perf_counter() - sent) * 1000.0, None, one_line(exc))


async def _watch(
    session: aiohttp.ClientSession,
    base_url: str,
    origin_unix: float,
    poll_s: float,
    into: list[Observed],
) -> None:
    while True:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValidationError):
            async with session.get(f"{base_url}/adaptation") as response:
                text = await response.text()
            into.append(
                Observed(time.time() - origin_unix, AdaptationReport.model_validate_json(text))
            )
        await asyncio.sleep(poll_s)


async def trace_replay(
    base_url: str,
    model: str,
    data: Dataset,
    *,
    origin_unix: float,
    duration_s: float,
    poll_s: float = 0.25,
    timeout_s: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
) -> TraceReplayed:
    """Replay `data` round and round through the edge at `base_url` from `origin_unix` (Unix
    seconds, the trace's t=0) for `duration_s` seconds; `progress` gets whole seconds done."""
    url = f"{base_url}/v2/models/{model}/infer"
    await asyncio.sleep(max(origin_unix - time.time(), 0.0))
    late = max(time.time() - origin_unix, 0.0)
    answers: list[TimedAnswer] = []
    timeline: list[Observed] = []
    total = round(duration_s)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            before = await metric_sum(session, base_url, OFFLOAD_BYTES)
            watcher = asyncio.create_task(_watch(session, base_url, origin_unix, poll_s, timeline))
            try:
                while (t_s := time.time() - origin_unix) < duration_s:
                    answers.append(await _post(session, url, data, len(answers), t_s))
                    if progress is not None:
                        progress(min(int(t_s), total), total)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            after = await metric_sum(session, base_url, OFFLOAD_BYTES)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ReplayError(f"cannot reach the edge at {base_url}: {one_line(exc)}") from None
    return TraceReplayed(tuple(answers), tuple(timeline), after - before, late)
