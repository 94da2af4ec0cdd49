"""Request arrival patterns for the emulated edge server, as endless streams of inter-arrival gaps.

Each pattern's `gaps(rng)` yields the seconds from one arrival to the next (the first gap counts
from time 0), drawing any randomness from the seeded `random.Random` it is given, so one seed
always gives one stream. EcoEdgeInfer's synthetic loads were fixed gaps of 50 and 90 ms and bursts
of 10 requests every 500 and 900 ms; its traces (traffic camera, Twitter, Azure Functions) are
replayed with `Trace`.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Protocol


def _check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number of seconds, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name}: must be positive, got {value}")


class ArrivalPattern(Protocol):
    """An arrival process: a name for reports and an endless stream of gaps."""

    @property
    def label(self) -> str:
        """A short name, in `parse_pattern`'s syntax where there is one."""
        ...

    def gaps(self, rng: random.Random) -> Iterator[float]:
        """Seconds between consecutive arrivals, forever."""
        ...


@dataclass(frozen=True)
class Fixed:
    """One request every `interval_s`."""

    interval_s: float

    def __post_init__(self) -> None:
        _check_seconds("interval_s", self.interval_s)

    @property
    def label(self) -> str:
        """`fixed:<ms>ms`."""
        return f"fixed:{self.interval_s * 1000:g}ms"

    def gaps(self, rng: random.Random) -> Iterator[float]:
        """The same gap forever; `rng` is unused."""
        while True:
            yield self.interval_s


@dataclass(frozen=True)
class Bursty:
    """`size` requests arriving together every `period_s`."""

    size: int
    period_s: float

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size: must be a positive integer, got {self.size!r}")
        _check_seconds("period_s", self.period_s)

    @property
    def label(self) -> str:
        """`bursty:<size>/<ms>ms`."""
        return f"bursty:{self.size}/{self.period_s * 1000:g}ms"

    def gaps(self, rng: random.Random) -> Iterator[float]:
        """A period, then size - 1 zero gaps, forever; `rng` is unused."""
        while True:
            yield self.period_s
            yield from (0.0 for _ in range(self.size - 1))


@dataclass(frozen=True)
class Poisson:
    """Independent arrivals at a mean gap of `mean_interval_s` (exponential gaps)."""

    mean_interval_s: float

    def __post_init__(self) -> None:
        _check_seconds("mean_interval_s", self.mean_interval_s)

    @property
    def label(self) -> str:
        """`poisson:<ms>ms`."""
        return f"poisson:{self.mean_interval_s * 1000:g}ms"

    def gaps(self, rng: random.Random) -> Iterator[float]:
        """Exponential gaps drawn from `rng`."""
        rate = 1.0 / self.mean_interval_s
        while True:
            yield rng.expovariate(rate)


@dataclass(frozen=True)
class Trace:
    """Recorded arrival timestamps (seconds, finite, non-decreasing, at least two of them).

    The trace repeats once it runs out, so a window never starves; between the last timestamp and
    the next repetition's first lies the trace's mean gap.
    """

    timestamps_s: tuple[float, ...]
    name: str = "trace"

    def __post_init__(self) -> None:
        if len(self.timestamps_s) < 2:
            raise ValueError(
                f"timestamps_s: needs at least 2 timestamps, got {len(self.timestamps_s)}"
            )
        for i, t in enumerate(self.timestamps_s):
            if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
                raise ValueError(f"timestamps_s: entry {i} must be a finite number, got {t!r}")
        for i, (a, b) in enumerate(pairwise(self.timestamps_s)):
            if b < a:
                raise ValueError(f"timestamps_s: must not decrease, entry {i + 1} ({b}) < {a}")
        if self.timestamps_s[-1] == self.timestamps_s[0]:
            raise ValueError("timestamps_s: must span a positive time, all entries are equal")

    @classmethod
    def from_timestamps(cls, timestamps_s: Sequence[float], name: str = "trace") -> Trace:
        """A trace from any sequence of timestamps (validated)."""
        return cls(tuple(timestamps_s), name)

    @property
    def label(self) -> str:
        """`trace:<name>`."""
        return f"trace:{self.name}"

    @property
    def mean_gap_s(self) -> float:
        """The mean gap between consecutive timestamps."""
        return (self.timestamps_s[-1] - self.timestamps_s[0]) / (len(self.timestamps_s) - 1)

    def gaps(self, rng: random.Random) -> Iterator[float]:
        """The trace's gaps, repeated forever; the very first arrival is at the first timestamp
        (measured from 0 when it is positive); `rng` is unused.
        """
        first = self.timestamps_s[0]
        yield max(first, 0.0)
        inner = [b - a for a, b in pairwise(self.timestamps_s)]
        while True:
            yield from inner
            yield self.mean_gap_s


_DURATION = r"(\d+(?:\.\d+)?)(ms|s)"
_PATTERNS = {
    "fixed": re.compile(rf"fixed:{_DURATION}"),
    "poisson": re.compile(rf"poisson:{_DURATION}"),
    "bursty": re.compile(rf"bursty:(\d+)/{_DURATION}"),
}


def _seconds(number: str, unit: str) -> float:
    return float(number) / (1000.0 if unit == "ms" else 1.0)


MAX_TRACE_BYTES = 16 * 1024 * 1024


def load_trace(path: Path) -> Trace:
    """A trace file: one arrival timestamp in seconds per line (blank lines and `#` comments
    skipped; a CSV's first column is read). ValueError naming the file and line."""
    try:
        if path.stat().st_size > MAX_TRACE_BYTES:
            raise ValueError(f"trace {path}: larger than {MAX_TRACE_BYTES // 2**20} MiB")
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"trace {path}: cannot read it: {exc}") from None
    stamps = []
    for number, line in enumerate(lines, 1):
        field = line.split("#", 1)[0].split(",", 1)[0].strip()
        if not field:
            continue
        try:
            stamps.append(float(field))
        except ValueError:
            if not stamps and number == 1:  # a CSV header
                continue
            raise ValueError(
                f"trace {path} line {number}: expected a timestamp in seconds, got {field[:40]!r}"
            ) from None
    try:
        return Trace.from_timestamps(stamps, path.name)
    except ValueError as exc:
        raise ValueError(f"trace {path}: {exc}") from None


def parse_pattern(text: str) -> Fixed | Bursty | Poisson | Trace:
    """`fixed:50ms`, `poisson:70ms`, `bursty:10/500ms` (units ms or s) or `trace:FILE` (see
    `load_trace`) as a pattern."""
    kind = text.split(":", 1)[0].strip()
    if kind == "trace":
        return load_trace(Path(text.split(":", 1)[1].strip()))
    form = _PATTERNS.get(kind)
    if form is None:
        raise ValueError(
            f"pattern: unknown kind {kind!r} in {text!r}; use fixed, poisson, bursty or trace"
        )
    match = form.fullmatch(text.strip())
    if match is None:
        example = {"fixed": "fixed:50ms", "poisson": "poisson:70ms", "bursty": "bursty:10/500ms"}
        raise ValueError(f"pattern: cannot read {text!r}; expected e.g. {example[kind]}")
    if kind == "bursty":
        return Bursty(int(match.group(1)), _seconds(match.group(2), match.group(3)))
    seconds = _seconds(match.group(1), match.group(2))
    return Fixed(seconds) if kind == "fixed" else Poisson(seconds)
