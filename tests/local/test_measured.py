"""The measured report's arithmetic: rows from replayed answers, and the verdict."""

from __future__ import annotations

import pytest

from inferedge.core.plan import Plan, PlanRequest
from inferedge.core.planner import make_plan
from inferedge.core.sweep import Outcome, SweepReport
from inferedge.local.baselines import baseline_row
from inferedge.local.measured import MeasuredReport, measured_markdown, measured_row, verdict
from inferedge.local.replay import Replayed, Served
from tests.factories import profile


def _plan() -> Plan:
    edge = profile([4.0] * 10, name="edge", acts=[4096] * 11)
    cloud = profile([0.5] * 10, name="cloud", acts=[4096] * 11)
    request = PlanRequest(strategy="memory", memory_fraction=0.5, edge_exits=1, cloud_exits=1)
    return make_plan(edge, cloud, request)


def _served(
    exit_index: int, location: str, ms: float, right: bool = True, **timings: float
) -> Served:
    return Served(
        label=1,
        prediction=1 if right else 2,
        confidence=0.9,
        exit_index=exit_index,
        location=location,
        degraded=False,
        reason=None,
        server_ms=ms,
        client_ms=ms + 1,
        timings={"total_ms": ms, **timings},
    )


def _predicted(latency_ms: float) -> Outcome:
    return Outcome(name="0.50", threshold=0.5, accuracy=0.75, exit_shares=(0.5, 0.0, 0.5),
                   offload_rate=0.5, latency_ms=latency_ms, latency_p95_ms=latency_ms * 2,
                   transfer_bytes=500.0, cloud_usd_per_million=0.0, edge_memory_bytes=1,
                   cloud_memory_bytes=1)  # fmt: skip


def test_a_row_counts_accuracy_offloads_bytes_and_per_exit_latency() -> None:
    plan = _plan()
    final = len(plan.exits)
    served = (_served(0, "edge", 10.0), _served(0, "edge", 12.0, right=False),
              _served(final, "cloud", 50.0), _served(final, "cloud", 60.0))  # fmt: skip
    row = measured_row(
        plan, 0.5, Replayed(served, offload_bytes=2000.0, seconds=1.0), _predicted(30)
    )
    assert row.samples == 4
    assert row.accuracy == 0.75
    assert row.offload_rate == 0.5
    assert row.offload_bytes_per_request == 500.0
    assert row.latency_mean_ms == pytest.approx(33.0)
    assert row.latency_p50_ms == pytest.approx(31.0)
    assert [(e.exit_index, e.requests, e.measured_ms) for e in row.exits] == [
        (0, 2, 11.0),
        (final, 2, 55.0),
    ]
    assert row.exits[-1].predicted_ms == plan.final_latency_ms
    assert row.latency_ratio == pytest.approx(1.1)


def test_the_verdict_says_within_or_names_the_exit_that_costs_most() -> None:
    plan = _plan()
    final = len(plan.exits)
    served = (_served(0, "edge", 10.0), _served(final, "cloud", 200.0))
    near = measured_row(plan, 0.5, Replayed(served, 0.0, 1.0), _predicted(100.0))
    assert "within 25%" in verdict(near)
    far = measured_row(plan, 0.5, Replayed(served, 0.0, 1.0), _predicted(20.0))
    text = verdict(far)
    assert "outside 25%" in text
    assert f"exit {final} (cloud" in text.split("Per request, ")[1].split(";")[0]
    assert "by component" not in text  # these answers carry no breakdown
    report = MeasuredReport(plan_hash=plan.hash, pipeline="p", calibrated_threshold=0.5,
                            edge_slowdown=8, cloud_slowdown=1, bandwidth_mbps=8, rtt_ms=40,
                            rows=(far,), verdict=text)  # fmt: skip
    markdown = measured_markdown(report)
    assert "| 0.50 * |" in markdown
    assert text in markdown


def test_components_split_the_latency_and_the_verdict_names_the_one_that_misses() -> None:
    plan = _plan()
    final = len(plan.exits)
    edge_exit = plan.exits[0]
    served = (
        _served(0, "edge", 30.0, edge_compute_ms=25.0, edge_ms=27.0),
        _served(final, "cloud", 100.0, edge_compute_ms=40.0, edge_ms=42.0, transfer_ms=50.0,
                cloud_ms=8.0),
    )  # fmt: skip
    row = measured_row(plan, 0.5, Replayed(served, 0.0, 1.0), _predicted(20.0))
    measured = {c.name: c.measured_ms for c in row.components}
    assert measured == {"edge compute": 32.5, "edge serving": 2.0, "offload": 25.0, "cloud": 4.0}
    predicted = {c.name: c.predicted_ms for c in row.components}
    cloud_share = plan.final_latency_ms - plan.edge.compute_ms - plan.transfer_ms
    assert predicted["edge compute"] == pytest.approx(
        (edge_exit.latency_ms + plan.edge.compute_ms) / 2
    )
    assert predicted["edge serving"] == 0.0
    assert predicted["offload"] == pytest.approx(plan.transfer_ms / 2)
    assert predicted["cloud"] == pytest.approx(cloud_share / 2)
    at_edge = row.exits[0].components
    assert [c.measured_ms for c in at_edge] == [25.0, 2.0, 0.0, 0.0]
    text = verdict(row)
    worst = max(row.components, key=lambda c: abs(c.measured_ms - c.predicted_ms))
    assert f"by component: {worst.name} {worst.measured_ms:.1f} ms per request" in text
    report = MeasuredReport(plan_hash=plan.hash, pipeline="p", calibrated_threshold=0.5,
                            edge_slowdown=8, cloud_slowdown=1, bandwidth_mbps=8, rtt_ms=40,
                            rows=(row,), verdict=text)  # fmt: skip
    assert "| edge compute | edge serving | offload | cloud |" in measured_markdown(report)
    assert "| 25.0 (" in measured_markdown(report)


def test_each_exit_is_predicted_by_the_evaluations_path_where_it_gives_one() -> None:
    plan = _plan()
    final = len(plan.exits)
    served = (
        _served(0, "edge", 30.0, edge_compute_ms=25.0, edge_ms=27.0),
        _served(final, "cloud", 100.0, edge_compute_ms=40.0, edge_ms=42.0, transfer_ms=50.0,
                cloud_ms=8.0),
    )  # fmt: skip
    paths = (*(e.latency_ms + 1.0 for e in plan.exits), plan.final_latency_ms + 3.0)
    clouds = (0.0, 2.0, 6.0)
    report = SweepReport(
        plan_hash=plan.hash, split="test", samples=2, confidence="max_softmax",
        exit_cuts=(1, 2, 3), exit_parts=("edge", "cloud", "cloud"),
        exit_accuracy=(1.0, 1.0, 1.0), exit_latency_ms=paths, exit_cloud_ms=clouds,
        rows=(), edge_only=_predicted(1), cloud_only=_predicted(1),
        split_no_exits=_predicted(1), oracle=_predicted(1),
    )  # fmt: skip
    row = measured_row(plan, 0.5, Replayed(served, 0.0, 1.0), _predicted(20.0), report)
    assert [e.predicted_ms for e in row.exits] == [paths[0], paths[final]]
    cloud_parts = [c.predicted_ms for c in row.exits[-1].components]
    link = plan.transfer_ms
    assert cloud_parts == pytest.approx([paths[final] - link - 6.0, 0.0, link, 6.0])


def test_baselines_are_summarised_and_the_pipeline_is_compared_with_each() -> None:
    plan = _plan()
    pipeline = measured_row(
        plan, 0.5, Replayed((_served(0, "edge", 10.0),) * 2, 0.0, 1.0), _predicted(10.0)
    )
    edge_only = baseline_row(
        "edge_only", "10/-/-", Replayed((_served(0, "edge", 40.0),) * 2, 0.0, 1.0), 38.0
    )
    cloud_only = baseline_row(
        "cloud_only",
        "0/-/-",
        Replayed((_served(0, "cloud", 20.0), _served(0, "cloud", 30.0, right=False)), 800, 1),
        24.0,
    )
    assert (edge_only.accuracy, edge_only.latency_mean_ms) == (1.0, 40.0)
    assert (cloud_only.accuracy, cloud_only.offload_bytes_per_request) == (0.5, 400.0)
    report = MeasuredReport(plan_hash=plan.hash, pipeline="p", calibrated_threshold=0.5,
                            edge_slowdown=8, cloud_slowdown=1, bandwidth_mbps=8, rtt_ms=40,
                            rows=(pipeline,), verdict="v",
                            baselines=(edge_only, cloud_only))  # fmt: skip
    markdown = measured_markdown(report)
    # 10 ms against 40 and 25 ms; the pipeline answered both right, as edge-only did.
    assert "| edge_only | 10/-/- | 100.00% | 40.0 (38.0) |" in markdown
    assert "| 0.25 | +0.00 points |" in markdown
    assert "| 0.40 | +50.00 points |" in markdown
