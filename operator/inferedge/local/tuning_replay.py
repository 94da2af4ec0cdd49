"""The tuning phase of `inferedge run`: requests sent open-loop on a schedule that steps between
arrival patterns, then the edge's own tuning report (`GET /tuning`).

Open loop, as traffic arrives: each request leaves at its scheduled time whether or not the
earlier ones were answered, so a busy edge sees its queue grow and batches form. The schedule
is `PATTERN@SECONDS` steps (`fixed:50ms@40s,fixed:8ms@40s`), drawn from a seeded source, and
the test split is sent round and round.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from pydantic import ValidationError

from inferedge.api.tuning import TuningReport
from inferedge.core.errors import describe_validation_error, one_line
from inferedge.dnn.data import Dataset
from inferedge.local.arrivals import ArrivalPattern, parse_pattern
from inferedge.local.replay import ReplayError, infer_body
from inferedge.report.tuning import plot_tuning, summarise, tuning_markdown

_STEP = re.compile(r"(?P<pattern>[^@]+)@(?P<seconds>\d+(?:\.\d+)?)s")


@dataclass(frozen=True)
class ArrivalStep:
    """One stretch of the schedule: a pattern held for `seconds`."""

    pattern: ArrivalPattern
    seconds: float
    text: str


def parse_steps(text: str) -> tuple[ArrivalStep, ...]:
    """`PATTERN@SECONDS[,PATTERN@SECONDS...]`, e.g. `fixed:50ms@40s,bursty:10/500ms@40s`;
    ValueError naming what is wrong."""
    steps = []
    for part in (p.strip() for p in text.split(",")):
        match = _STEP.fullmatch(part)
        if match is None:
            raise ValueError(f"expected PATTERN@SECONDSs like fixed:50ms@40s, got {part!r}")
        seconds = float(match["seconds"])
        if not 0 < seconds <= 3600:
            raise ValueError(f"{part!r}: a step lasts 1 s to 1 h, got {seconds:g} s")
        steps.append(ArrivalStep(parse_pattern(match["pattern"]), seconds, part))
    return tuple(steps)


def schedule(steps: Sequence[ArrivalStep], seed: int = 0) -> list[tuple[float, int]]:
    """(send time in seconds from the start, step index) of every request."""
    rng = random.Random(seed)
    times: list[tuple[float, int]] = []
    begin = 0.0
    for index, step in enumerate(steps):
        t = begin
        for gap in step.pattern.gaps(rng):
            t += gap
            if t >= begin + step.seconds - 1e-9:  # a gap summed to the end is the next step's
                break
            times.append((t, index))
        begin += step.seconds
    return times


@dataclass(frozen=True)
class PacedReplay:
    """What the paced replay sent and got back."""

    sent: int
    answered: int
    refused: int
    """Requests the edge answered with an error (e.g. 503 edge_busy): counted, never lost."""
    seconds: float


async def paced_replay(
    base_url: str,
    model: str,
    data: Dataset,
    steps: Sequence[ArrivalStep],
    *,
    seed: int = 0,
    timeout_s: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
) -> PacedReplay:
    """Send the test split on the schedule of `steps` to the edge at `base_url`."""
    url = f"{base_url}/v2/models/{model}/infer"
    plan = schedule(steps, seed)
    answered = refused = done = 0

    async def send(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal answered, refused, done
        body = infer_body(data.x[i % len(data)], f"paced-{i}")
        async with session.post(url, json=body) as response:
            await response.read()
            if response.status == 200:
                answered += 1
            else:
                refused += 1
        done += 1
        if progress is not None:
            progress(done, len(plan))

    started = time.perf_counter()
    tasks = []
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(limit=0),
        ) as session:
            for i, (at, _) in enumerate(plan):
                delay = started + at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)  # the schedule itself: requests leave on time
                tasks.append(asyncio.create_task(send(session, i)))
            await asyncio.gather(*tasks)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ReplayError(f"cannot reach the edge at {base_url}: {one_line(exc)}") from None
    return PacedReplay(len(plan), answered, refused, time.perf_counter() - started)


async def fetch_tuning(base_url: str, timeout_s: float = 30.0) -> TuningReport:
    """The edge's tuning report (`GET /tuning`), validated."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(f"{base_url}/tuning") as response,
        ):
            text = await response.text()
            if response.status != 200:
                raise ReplayError(f"the edge answered {response.status} to GET /tuning: {text}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ReplayError(f"cannot reach the edge at {base_url}: {one_line(exc)}") from None
    try:
        return TuningReport.model_validate_json(text)
    except ValidationError as exc:
        raise ReplayError(describe_validation_error(exc, "the edge's /tuning")) from None


def write_tuning(
    report: TuningReport,
    steps: Sequence[ArrivalStep],
    replay: PacedReplay,
    replay_start_unix: float,
    report_dir: Path,
) -> list[Path]:
    """tuning.json, tuning.md and tuning.png under `report_dir`; returns the paths."""
    report_dir.mkdir(parents=True, exist_ok=True)
    spans = [(step.text.rsplit("@", 1)[0], step.seconds) for step in steps]
    summaries = summarise(report, spans, replay_start_unix)
    data = report_dir / "tuning.json"
    payload = {
        "emulated": report.emulated,
        "schedule": [{"pattern": p, "seconds": s} for p, s in spans],
        "replay": {"sent": replay.sent, "answered": replay.answered, "refused": replay.refused},
        "steps": [s.model_dump(mode="json") for s in summaries],
        "edge": report.model_dump(mode="json"),
    }
    data.write_text(json.dumps(payload, indent=2) + "\n")
    markdown = report_dir / "tuning.md"
    markdown.write_text(tuning_markdown(report, summaries))
    return [
        data,
        markdown,
        plot_tuning(report, spans, replay_start_unix, report_dir / "tuning.png"),
    ]
