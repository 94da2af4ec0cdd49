"""Arrival patterns: their gaps, their seeds, their labels and their input checks."""

from __future__ import annotations

import random
import re
from itertools import islice
from pathlib import Path

import pytest

from inferedge.local.arrivals import Bursty, Fixed, Poisson, Trace, parse_pattern


def _take(pattern: Fixed | Bursty | Poisson | Trace, n: int, seed: int = 0) -> list[float]:
    return list(islice(pattern.gaps(random.Random(seed)), n))


def test_fixed_gaps_are_constant() -> None:
    assert _take(Fixed(0.05), 4) == [0.05] * 4


def test_bursty_arrives_together_every_period() -> None:
    assert _take(Bursty(3, 0.5), 7) == [0.5, 0.0, 0.0, 0.5, 0.0, 0.0, 0.5]


def test_poisson_is_seeded_and_has_the_right_mean() -> None:
    gaps = _take(Poisson(0.07), 20_000, seed=3)
    assert gaps == _take(Poisson(0.07), 20_000, seed=3)
    assert gaps != _take(Poisson(0.07), 20_000, seed=4)
    assert sum(gaps) / len(gaps) == pytest.approx(0.07, rel=0.03)
    assert min(gaps) >= 0.0


def test_trace_replays_its_gaps_and_repeats() -> None:
    trace = Trace.from_timestamps([1.0, 1.5, 1.5, 3.0])
    assert trace.mean_gap_s == pytest.approx(2.0 / 3.0)
    assert _take(trace, 6) == pytest.approx([1.0, 0.5, 0.0, 1.5, 2.0 / 3.0, 0.5])


@pytest.mark.parametrize(
    "timestamps",
    [[0.0], [0.0, float("nan")], [0.0, 2.0, 1.0], [1.0, 1.0], [0.0, float("inf")]],
)
def test_bad_traces_name_the_field(timestamps: list[float]) -> None:
    with pytest.raises(ValueError, match=r"^timestamps_s:"):
        Trace.from_timestamps(timestamps)


def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"^interval_s:"):
        Fixed(0.0)
    with pytest.raises(ValueError, match=r"^mean_interval_s:"):
        Poisson(float("inf"))
    with pytest.raises(ValueError, match=r"^size:"):
        Bursty(0, 0.5)
    with pytest.raises(ValueError, match=r"^period_s:"):
        Bursty(10, -1.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fixed:50ms", Fixed(0.05)),
        ("fixed:0.09s", Fixed(0.09)),
        ("poisson:70ms", Poisson(0.07)),
        ("bursty:10/500ms", Bursty(10, 0.5)),
        (" bursty:10/0.9s ", Bursty(10, 0.9)),
    ],
)
def test_parse_pattern(text: str, expected: Fixed | Bursty | Poisson) -> None:
    assert parse_pattern(text) == expected
    assert parse_pattern(expected.label) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("uniform:50ms", "unknown kind 'uniform'"),
        ("fixed:50", "expected e.g. fixed:50ms"),
        ("bursty:10ms", "expected e.g. bursty:10/500ms"),
        ("fixed:0ms", "interval_s: must be positive"),
        ("bursty:0/500ms", "size: must be a positive integer"),
    ],
)
def test_parse_pattern_errors_are_one_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_pattern(text)
    assert "\n" not in str(caught.value)


def test_a_trace_file_is_a_pattern(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text("t_s,camera\n# a comment\n0.5,1\n0.6,2\n\n1.0,3  # late\n")
    trace = parse_pattern(f"trace:{path}")
    assert isinstance(trace, Trace)
    assert trace.timestamps_s == (0.5, 0.6, 1.0)
    assert trace.label == "trace:arrivals.csv"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("0.1\nsoon\n", "line 2: expected a timestamp in seconds, got 'soon'"),
     ("0.1\n", "needs at least 2 timestamps"), ("1\n0.5\n", "must not decrease")],
)  # fmt: skip
def test_a_bad_trace_file_names_the_file_and_line(
    tmp_path: Path, content: str, fragment: str
) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=f"^trace {re.escape(str(path))}.*{re.escape(fragment)}"):
        parse_pattern(f"trace:{path}")
    with pytest.raises(ValueError, match="cannot read it"):
        parse_pattern(f"trace:{tmp_path / 'missing.txt'}")
