"""Infer-EDGE's per-cut analysis: the tables and the best cuts by latency and by energy."""

from __future__ import annotations

import pytest

from inferedge.core.cut_analysis import analyze_cuts
from inferedge.core.errors import PlanningError
from inferedge.core.link import Link
from inferedge.core.profile import MeasuredProfile
from inferedge.core.synthetic import synthetic_profile

EDGE = synthetic_profile(12, ms_per_gflop=60, device_name="edge")
CLOUD = synthetic_profile(12, ms_per_gflop=6, device_name="cloud")


def with_energy(profile: MeasuredProfile, mj_per_ms: float | None) -> MeasuredProfile:
    """`profile` as if its board's rails measured `mj_per_ms` for every ms of compute (None:
    as if it had no rails)."""
    segments = tuple(
        s.model_copy(
            update={
                "measurements": tuple(
                    m.model_copy(
                        update={"energy_mj": None if mj_per_ms is None else m.median_ms * mj_per_ms}
                    )
                    for m in s.measurements
                )
            }
        )
        for s in profile.segments
    )
    return profile.model_copy(update={"segments": segments})


def test_the_cut_table_accumulates_the_edges_time_and_names_each_output() -> None:
    analysis = analyze_cuts(with_energy(EDGE, None), CLOUD)
    assert [c.cut for c in analysis.cuts] == list(range(13))
    assert analysis.cuts[0].edge_ms == 0.0
    times = EDGE.request_ms(1)
    for row in analysis.cuts[1:]:
        assert row.segment_ms == pytest.approx(times[row.cut - 1])
        assert row.edge_ms == pytest.approx(sum(times[: row.cut]))
        assert row.output_bytes == EDGE.cut_points[row.cut].activation_bytes
        assert row.name == EDGE.cut_points[row.cut].name
    # no rails on this profile: no energy for any split (not even cut 0, which computes
    # nothing and would always win), and no best cut by it
    assert all(c.edge_energy_mj is None for c in analysis.cuts[1:])
    assert all(r.edge_energy_mj is None for r in analysis.splits)
    assert all(b.by_energy is None for b in analysis.best)


def test_each_split_costs_the_edge_prefix_the_link_and_the_cloud_suffix() -> None:
    analysis = analyze_cuts(EDGE, CLOUD, bandwidths_mbps=(8.0, 20.0), rtt_ms=10.0)
    assert len(analysis.splits) == 2 * 13
    edge_ms, cloud_ms = EDGE.request_ms(1), CLOUD.request_ms(1)
    for row in analysis.splits:
        link = Link(bandwidth_mbps=row.bandwidth_mbps, rtt_ms=10.0)
        shipped = EDGE.cut_points[row.cut].activation_bytes if row.cut < 12 else 0
        expected = sum(edge_ms[: row.cut]) + link.transfer_ms(shipped) + sum(cloud_ms[row.cut :])
        assert row.latency_ms == pytest.approx(expected)
    for best in analysis.best:
        rows = [r for r in analysis.splits if r.bandwidth_mbps == best.bandwidth_mbps]
        assert best.by_latency == min(rows, key=lambda r: r.latency_ms).cut
    # a faster link never makes the best split slower
    slow, fast = (min(r.latency_ms for r in analysis.splits if r.bandwidth_mbps == b)
                  for b in (8.0, 20.0))  # fmt: skip
    assert fast <= slow


def test_energy_counts_compute_radio_and_waiting_and_its_best_cut_can_differ() -> None:
    edge = with_energy(EDGE, mj_per_ms=2.0)
    analysis = analyze_cuts(edge, CLOUD, bandwidths_mbps=(1.0,), rtt_ms=10.0, radio_w=5.0,
                            idle_w=0.5)  # fmt: skip
    cloud_ms = CLOUD.request_ms(1)
    for row in analysis.splits:
        compute = 2.0 * sum(EDGE.request_ms(1)[: row.cut])
        shipped = EDGE.cut_points[row.cut].activation_bytes if row.cut < 12 else 0
        wire_ms = shipped * 8.0 / 1e6 * 1e3
        waiting = (10.0 if shipped else 0.0) + sum(cloud_ms[row.cut :])
        assert row.edge_energy_mj == pytest.approx(compute + 5.0 * wire_ms + 0.5 * waiting)
    (best,) = analysis.best
    assert best.by_energy == min(analysis.splits, key=lambda r: r.edge_energy_mj or 0.0).cut
    # on the faster links the edge saves energy by stopping earlier than the fastest split
    faster = analyze_cuts(edge, CLOUD, bandwidths_mbps=(8.0, 20.0), rtt_ms=10.0, radio_w=5.0,
                          idle_w=0.5)  # fmt: skip
    assert any(b.by_latency != b.by_energy for b in faster.best)
    # with no radio or idle cost, shipping the input costs the edge nothing: cloud-only wins
    free = analyze_cuts(edge, CLOUD, bandwidths_mbps=(1.0,), radio_w=0.0, idle_w=0.0)
    assert free.best[0].by_energy == 0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"bandwidths_mbps": ()}, "bandwidths: expected at least one"),
        ({"bandwidths_mbps": (0.0,)}, "bandwidths: expected Mbps > 0"),
        ({"rtt_ms": -1.0}, "rtt_ms: expected a finite number >= 0"),
        ({"radio_w": float("nan")}, "radio_w"),
        ({"batch_size": 4}, "batch_size: 4 was not profiled on both devices"),
    ],
)
def test_bad_figures_are_refused_naming_the_field(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(PlanningError, match=fragment):
        analyze_cuts(EDGE, CLOUD, **kwargs)  # type: ignore[arg-type]


def test_profiles_of_different_models_are_refused() -> None:
    other = synthetic_profile(9, device_name="cloud")
    with pytest.raises(PlanningError, match="different models"):
        analyze_cuts(EDGE, other)
