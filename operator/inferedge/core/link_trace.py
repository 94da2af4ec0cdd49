"""Link traces: how an emulated link's bandwidth and RTT move during a run.

A trace is piecewise constant: each point holds from its time until the next, and the last holds
to the end. It comes from a CSV of `t_s,bandwidth_mbps,rtt_ms` rows (a header row of those names
is allowed, `#` starts a comment), or is a built-in, made for a run of a given duration:

- `step`: 20, then 1, then 8 Mbps, each for a third of the run (a link that drops and partly
  recovers);
- `walk`: a seeded random walk of the bandwidth between 0.5 and 50 Mbps, one step a second,
  evenly spread in log space (a mobile link).

Parsing is pure: reading the file is the caller's business.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from typing import Final

from inferedge.core.errors import InferedgeError
from inferedge.core.link import Link

BUILTINS: Final = ("step", "walk")
MAX_POINTS: Final = 100_000
MAX_BANDWIDTH_MBPS: Final = 1e6
MAX_RTT_MS: Final = 60_000.0
STEP_MBPS: Final = (20.0, 1.0, 8.0)
WALK_MBPS: Final = (0.5, 50.0)
WALK_STEP_S: Final = 1.0
HEADER: Final = ("t_s", "bandwidth_mbps", "rtt_ms")


class TraceError(InferedgeError):
    """A trace that cannot be used; the message names the line and field."""


@dataclass(frozen=True)
class LinkTrace:
    """Link states from each point's time (seconds from the start of the run)."""

    name: str
    times_s: tuple[float, ...]
    links: tuple[Link, ...]

    def at(self, t_s: float) -> Link:
        """The link at `t_s` seconds (the first point's before it, the last's after the end)."""
        return self.links[max(bisect.bisect_right(self.times_s, t_s) - 1, 0)]

    def to_csv(self) -> str:
        """The trace as the CSV `parse_trace` reads."""
        rows = [",".join(HEADER)]
        rows += [
            f"{t:g},{link.bandwidth_mbps:g},{link.rtt_ms:g}"
            for t, link in zip(self.times_s, self.links, strict=True)
        ]
        return "\n".join(rows) + "\n"


def parse_trace(text: str, source: str) -> LinkTrace:
    """A trace from CSV text; TraceError naming `source`, the line and the field otherwise."""
    times: list[float] = []
    links: list[Link] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        cells = [c.strip() for c in line.split(",")]
        if not times and tuple(cells) == HEADER:
            continue
        where = f"{source}: line {number}"
        if len(cells) != len(HEADER):
            raise TraceError(f"{where}: expected {','.join(HEADER)}, got {len(cells)} fields")
        t, bandwidth, rtt = (
            _number(where, name, cell) for name, cell in zip(HEADER, cells, strict=True)
        )
        if times and t <= times[-1]:
            raise TraceError(f"{where}: t_s: expected after {times[-1]:g}, got {t:g}")
        if not times and t != 0:
            raise TraceError(f"{where}: t_s: expected the first point at 0, got {t:g}")
        if not 0 < bandwidth <= MAX_BANDWIDTH_MBPS:
            raise TraceError(
                f"{where}: bandwidth_mbps: expected > 0 and <= {MAX_BANDWIDTH_MBPS:g}, "
                f"got {bandwidth:g}"
            )
        if not 0 <= rtt <= MAX_RTT_MS:
            raise TraceError(f"{where}: rtt_ms: expected 0..{MAX_RTT_MS:g}, got {rtt:g}")
        if len(times) == MAX_POINTS:
            raise TraceError(f"{where}: expected at most {MAX_POINTS} points")
        times.append(t)
        links.append(Link(bandwidth_mbps=bandwidth, rtt_ms=rtt))
    if not times:
        raise TraceError(f"{source}: expected at least one t_s,bandwidth_mbps,rtt_ms row")
    return LinkTrace(source, tuple(times), tuple(links))


def _number(where: str, name: str, cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise TraceError(f"{where}: {name}: expected a number, got {cell[:40]!r}") from None
    if not math.isfinite(value):
        raise TraceError(f"{where}: {name}: expected a finite number, got {cell[:40]!r}")
    return value


def builtin_trace(
    name: str, duration_s: float, *, rtt_ms: float = 40.0, seed: int = 0
) -> LinkTrace:
    """A built-in trace (`step` or `walk`) for a run of `duration_s` seconds."""
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise TraceError(f"duration_s: expected a positive number of seconds, got {duration_s}")
    if not math.isfinite(rtt_ms) or not 0 <= rtt_ms <= MAX_RTT_MS:
        raise TraceError(f"rtt_ms: expected 0..{MAX_RTT_MS:g}, got {rtt_ms}")
    if name == "step":
        times = tuple(duration_s * i / len(STEP_MBPS) for i in range(len(STEP_MBPS)))
        links = tuple(Link(bandwidth_mbps=b, rtt_ms=rtt_ms) for b in STEP_MBPS)
        return LinkTrace("step", times, links)
    if name == "walk":
        return _walk(duration_s, rtt_ms, seed)
    raise TraceError(f"trace: expected {' or '.join(BUILTINS)} or a CSV file, got {name!r}")


def _walk(duration_s: float, rtt_ms: float, seed: int) -> LinkTrace:
    rng = random.Random(seed)
    low, high = (math.log(v) for v in WALK_MBPS)
    level = (low + high) / 2
    steps = max(1, min(MAX_POINTS, math.ceil(duration_s / WALK_STEP_S)))
    times, links = [], []
    for i in range(steps):
        times.append(i * WALK_STEP_S)
        links.append(Link(bandwidth_mbps=round(math.exp(level), 3), rtt_ms=rtt_ms))
        level += rng.gauss(0.0, 0.35)
        # reflect at the bounds, so the walk neither sticks to nor leaves the range
        if level < low:
            level = 2 * low - level
        if level > high:
            level = 2 * high - level
        level = min(max(level, low), high)
    return LinkTrace("walk", tuple(times), tuple(links))
