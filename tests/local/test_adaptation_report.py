"""The adaptation phase's figures and report, from hand-made replays: misses, failures, bytes,
switches, and the files written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inferedge.api.adaptation import AdaptationReport, PointReport
from inferedge.core.link import Link
from inferedge.local.adapting import request_points, summarise, timeline
from inferedge.local.replay import Served
from inferedge.local.trace_replay import Observed, TimedAnswer, TraceReplayed
from inferedge.report.adaptation import AdaptationRun, TraceRow, write_adaptation


def served(label: int, prediction: int, *, degraded: bool = False) -> Served:
    return Served(label, prediction, 0.9, 0, "edge", degraded, None, 1.0, 1.0, {})


def report_at(split: int, switches: int, mbps: float) -> AdaptationReport:
    link = Link(bandwidth_mbps=mbps, rtt_ms=20.0)
    return AdaptationReport(
        mode="follow",
        point=PointReport(split=split, edge_exits=(), cloud_exits=(), threshold=0.8,
                          accuracy=0.9, latency_ms=30.0, feasible=True),
        link=link, latest=link, switches=switches, corrections=0, edge_time_factor=1.0,
        points=10, states=4,
    )  # fmt: skip


REPLAYED = TraceReplayed(
    answers=(
        TimedAnswer(0.1, 20.0, served(1, 1)),
        TimedAnswer(0.2, 50.0, served(2, 3)),
        TimedAnswer(0.3, 30.0, served(3, 3, degraded=True)),
        TimedAnswer(0.4, 900.0, None, "HTTP 503"),
    ),
    timeline=(Observed(0.0, report_at(12, 0, 20.0)), Observed(0.3, report_at(4, 1, 1.0))),
    offload_bytes=4000.0,
    late_start_s=0.0,
)


def test_misses_count_late_and_failed_requests_and_accuracy_counts_answers() -> None:
    figures = summarise(REPLAYED, "follow", deadline_ms=40.0)
    assert (figures.requests, figures.failed, figures.degraded) == (4, 1, 1)
    assert figures.deadline_miss_rate == pytest.approx(2 / 4)  # one late, one failed
    assert figures.mean_ms == pytest.approx(100 / 3)
    assert figures.accuracy == pytest.approx(2 / 3)
    assert figures.bytes_per_request == pytest.approx(1000.0)
    assert figures.switches == 1
    assert summarise(REPLAYED, "off", deadline_ms=None).deadline_miss_rate is None
    assert [p.split for p in timeline(REPLAYED)] == [12, 4]
    assert [p.failed for p in request_points(REPLAYED)] == [False, False, False, True]


def test_the_report_writes_json_markdown_and_a_timeline(tmp_path: Path) -> None:
    policies = {
        name: summarise(REPLAYED, mode, 40.0)
        for name, mode in (("static", "off"), ("adaptive", "follow"), ("oracle", "oracle"),
                           ("edge_only", "off"), ("cloud_only", "off"))
    }  # fmt: skip
    run = AdaptationRun(
        pipeline="p", plan_hash="0" * 16, objective="deadline", deadline_ms=40.0,
        duration_s=1.0, trace_name="step",
        trace=(TraceRow(t_s=0.0, bandwidth_mbps=20.0, rtt_ms=20.0),
               TraceRow(t_s=0.5, bandwidth_mbps=1.0, rtt_ms=20.0)),
        switches=1, policies=policies,
        timelines={n: timeline(REPLAYED) for n in policies},
        requests={n: request_points(REPLAYED) for n in policies},
    )  # fmt: skip
    paths = write_adaptation(run, tmp_path)
    assert [p.name for p in paths] == ["adaptation.json", "adaptation.md", "adaptation.png"]
    data = json.loads(paths[0].read_text())
    for name in ("static", "adaptive", "oracle", "edge_only", "cloud_only"):
        assert set(data["policies"][name]) >= {
            "requests", "failed", "deadline_miss_rate", "mean_ms", "p95_ms", "accuracy",
            "bytes_per_request",
        }  # fmt: skip
    assert data["switches"] == 1
    assert data["trace"][1] == {"t_s": 0.5, "bandwidth_mbps": 1.0, "rtt_ms": 20.0}
    text = paths[1].read_text()
    assert "EMULATED" in text
    assert "adaptive deadline misses / static's: 1.00" in text
    # every ratio against a baseline is taken in the same run
    assert "adaptive deadline misses / edge_only's: 1.00" in text
    assert "adaptive mean latency / cloud_only's: 1.00; accuracy +0.00 points" in text
    assert paths[2].stat().st_size > 10_000
