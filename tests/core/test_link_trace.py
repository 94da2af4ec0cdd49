"""Link traces: the CSV, the built-ins, and bad input named by line and field."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferedge.core.link import Link
from inferedge.core.link_trace import TraceError, builtin_trace, parse_trace


def test_a_csv_is_piecewise_constant_and_round_trips() -> None:
    text = (
        "# a drive through a tunnel\nt_s,bandwidth_mbps,rtt_ms\n"
        "0,20,30\n10.5,0.8,120 # in\n30,12,40\n"
    )
    trace = parse_trace(text, "drive.csv")
    assert trace.at(-1.0) == trace.at(0.0) == Link(bandwidth_mbps=20, rtt_ms=30)
    assert trace.at(10.4).bandwidth_mbps == 20
    assert trace.at(10.5) == Link(bandwidth_mbps=0.8, rtt_ms=120)
    assert trace.at(1e9).bandwidth_mbps == 12
    assert parse_trace(trace.to_csv(), "again") == parse_trace(text, "again")


def test_step_drops_to_one_megabit_for_the_middle_third() -> None:
    trace = builtin_trace("step", 90.0, rtt_ms=25.0)
    assert [trace.at(t).bandwidth_mbps for t in (0, 29.9, 30, 59.9, 60, 89)] == [
        20, 20, 1, 1, 8, 8,
    ]  # fmt: skip
    assert {link.rtt_ms for link in trace.links} == {25.0}


@given(seed=st.integers(0, 2**32 - 1), duration=st.floats(1.0, 600.0))
def test_walk_stays_in_range_one_step_a_second_and_repeats_with_its_seed(
    seed: int, duration: float
) -> None:
    trace = builtin_trace("walk", duration, seed=seed)
    assert len(trace.links) == math.ceil(duration)
    assert all(0.5 <= link.bandwidth_mbps <= 50.0 for link in trace.links)
    assert builtin_trace("walk", duration, seed=seed) == trace


def test_walk_moves() -> None:
    trace = builtin_trace("walk", 300.0, seed=7)
    values = [link.bandwidth_mbps for link in trace.links]
    assert max(values) / min(values) > 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "t.csv: expected at least one t_s,bandwidth_mbps,rtt_ms row"),
        ("0,10\n", "t.csv: line 1: expected t_s,bandwidth_mbps,rtt_ms, got 2 fields"),
        ("0,fast,10\n", "t.csv: line 1: bandwidth_mbps: expected a number, got 'fast'"),
        ("0,nan,10\n", "t.csv: line 1: bandwidth_mbps: expected a finite number"),
        ("0,0,10\n", "t.csv: line 1: bandwidth_mbps: expected > 0"),
        ("0,5,-1\n", "t.csv: line 1: rtt_ms: expected 0..60000"),
        ("1,5,10\n", "t.csv: line 1: t_s: expected the first point at 0, got 1"),
        ("0,5,10\n0,6,10\n", "t.csv: line 2: t_s: expected after 0, got 0"),
        (
            "t_s,bandwidth_mbps,rtt_ms\n0,5,10\nt_s,bandwidth_mbps,rtt_ms\n",
            "line 3: t_s: expected a number",
        ),
    ],
)
def test_a_bad_csv_is_refused_naming_the_line_and_field(text: str, message: str) -> None:
    with pytest.raises(TraceError) as error:
        parse_trace(text, "t.csv")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_bad_builtins_are_refused() -> None:
    with pytest.raises(TraceError, match="trace: expected step or walk or a CSV file, got 'lte'"):
        builtin_trace("lte", 10.0)
    with pytest.raises(TraceError, match="duration_s: expected a positive number"):
        builtin_trace("step", 0.0)
    with pytest.raises(TraceError, match=r"rtt_ms: expected 0\.\.60000"):
        builtin_trace("step", 10.0, rtt_ms=float("inf"))


def test_the_example_trace_parses() -> None:
    root = Path(__file__).resolve().parents[2]
    trace = parse_trace((root / "examples/links/tunnel.csv").read_text(), "tunnel.csv")
    assert [trace.at(t).bandwidth_mbps for t in (0, 40, 60)] == [8, 0.2, 20]
