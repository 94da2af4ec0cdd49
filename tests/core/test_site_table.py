"""The site's table from a plan, its calibration and each class's profile."""

from __future__ import annotations

import pytest

from inferedge.core.distribution import DistributionError
from inferedge.core.manifest import Calibration
from inferedge.core.plan import PlanRequest
from inferedge.core.planner import make_plan
from inferedge.core.site_table import served_version, site_rows
from inferedge.core.synthetic import synthetic_profile

EDGE = synthetic_profile(10, ms_per_gflop=50, device_name="nano")
SLOW = synthetic_profile(10, ms_per_gflop=150, device_name="pi4")
PLAN = make_plan(
    EDGE, EDGE, PlanRequest(strategy="memory", memory_fraction=1.0, edge_exits=2, cloud_exits=0)
)


def calibration(expected_ms: float) -> Calibration:
    cuts = [e.cut_index for e in PLAN.exits]
    return Calibration(
        threshold=0.6,
        split="test",
        accuracy=0.97,
        exit_accuracy={cuts[0]: 0.90, cuts[1]: 0.94, PLAN.final_cut: 0.98},
        expected_latency_ms=expected_ms,
        offload_rate=0.0,
    )


def test_a_whole_version_costs_its_expected_share_of_the_full_path() -> None:
    assert PLAN.split == PLAN.final_cut  # the whole model on the edge
    version = served_version("m", PLAN, calibration(PLAN.final_latency_ms / 4))
    assert version.share == pytest.approx(0.25)
    assert version.accuracy == 0.97
    rows = site_rows({"nano": EDGE, "pi4": SLOW}, version)
    assert [r.device for r in rows] == ["nano", "pi4"]
    whole = sum(s.at(1).median_ms for s in EDGE.segments)
    assert rows[0].throughput == pytest.approx(4 * 1000.0 / whole)
    assert rows[1].throughput == pytest.approx(rows[0].throughput / 3)


def test_a_truncated_version_costs_its_exits_path_and_has_its_accuracy() -> None:
    first = next(e for e in PLAN.exits if e.part == "edge")
    version = served_version("m-exit1", PLAN, calibration(10.0), answer_at=1)
    assert version.accuracy == 0.90
    assert version.share == pytest.approx(first.latency_ms / PLAN.final_latency_ms)
    assert version.answer_at == 1
    with pytest.raises(DistributionError, match="placed 2 edge exits, not 3"):
        served_version("m-exit3", PLAN, calibration(10.0), answer_at=3)
