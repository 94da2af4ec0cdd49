"""The tuning phase of `inferedge run` without servers: the schedule, its parsing, and the
report's summary, markdown and plot from a synthetic edge report."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferedge.api.tuning import TuningReport, WindowReport
from inferedge.local.arrivals import Bursty, Fixed
from inferedge.local.tuning_replay import parse_steps, schedule
from inferedge.report.tuning import plot_tuning, summarise, tuning_markdown


def test_steps_parse_and_schedule_in_order() -> None:
    steps = parse_steps("fixed:100ms@1s, bursty:5/500ms@1s")
    assert [s.pattern for s in steps] == [Fixed(0.1), Bursty(5, 0.5)]
    assert [s.seconds for s in steps] == [1.0, 1.0]
    times = schedule(steps)
    first = [t for t, i in times if i == 0]
    second = [t for t, i in times if i == 1]
    assert first == pytest.approx([0.1 * k for k in range(1, 10)])
    # bursts of 5 every 500 ms, from the step's start at 1 s
    assert len(second) == 5
    assert all(1.0 <= t < 2.0 for t in second)
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("fixed:50ms", "expected PATTERN@SECONDSs"), ("fixed:50ms@0s", "a step lasts 1 s to 1 h"),
     ("sometimes@5s", "sometimes"), ("fixed:50ms@5s,", "got ''")],
)  # fmt: skip
def test_bad_steps_name_the_part(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_steps(text)


def _window(index: int, at: float, batch: int, served: float) -> WindowReport:
    return WindowReport(
        index=index, finished_s=at, cpu_khz=1_907_000.0, gpu_khz=1_109_000.0, batch=batch,
        served_batch=served, arrival_rate_hz=10.0 if at < 10 else 200.0, latency_ms=5.0,
        energy_j_per_request=0.002, cost=1.0 - index / 100, converged=False,
    )  # fmt: skip


def test_the_report_summarises_each_step_and_draws(tmp_path: Path) -> None:
    report = TuningReport(
        optimiser="ecogd", emulated=True, clocks=True, started_unix=1000.0,
        reference={"energy_j_per_request": 0.002, "latency_s": 0.005},
        setting={"cpu_khz": 1_907_000.0, "gpu_khz": 1_109_000.0, "batch": 4.0}, window_count=4,
        windows=[_window(0, 3.0, 4, 1.0), _window(1, 8.0, 2, 1.0), _window(2, 13.0, 4, 3.5),
                 _window(3, 18.0, 8, 6.0)],
    )  # fmt: skip
    # the replay started 2 s after the tuner: windows end at 1, 6, 11, 16 s into it
    steps = [("fixed:100ms", 10.0), ("fixed:5ms", 10.0)]
    slow, fast = summarise(report, steps, replay_start_unix=1002.0)
    assert (slow.windows, fast.windows) == (2, 2)
    assert slow.served_batch == 1.0
    assert fast.served_batch == pytest.approx(4.75)
    assert (slow.batch, fast.batch) == (2, 8)
    assert fast.cost == pytest.approx(0.97)
    text = tuning_markdown(report, [slow, fast])
    assert "EMULATED" in text
    assert "| 2 (10-20 s) | fixed:5ms | 2 | 4.75 | 8 | 1907 | 1109 |" in text
    path = plot_tuning(report, steps, 1002.0, tmp_path / "tuning.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_step_without_windows_shows_dashes() -> None:
    report = TuningReport(
        optimiser="grid", emulated=False, clocks=False, started_unix=0.0, reference=None,
        setting={"cpu_khz": 1.0, "gpu_khz": 1.0, "batch": 1.0}, window_count=0, windows=[],
    )  # fmt: skip
    (summary,) = summarise(report, [("fixed:50ms", 5.0)], replay_start_unix=0.0)
    assert summary.windows == 0
    assert summary.served_batch is None
    assert "| 1 (0-5 s) | fixed:50ms | 0 | - | - |" in tuning_markdown(report, [summary])
