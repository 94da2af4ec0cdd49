"""The exploration table: rows from profiles, the policy's pools, and the versions' front."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from inferedge.core.distribution import DistributionError, distribute
from inferedge.core.exploration import (
    ExplorationRow,
    exploration_row,
    versions_front,
    with_exits,
)
from inferedge.core.profile import MeasuredProfile
from inferedge.core.site_choice import policy_pools
from inferedge.core.synthetic import synthetic_profile
from tests.core.test_cut_analysis import with_energy


def batched(profile: MeasuredProfile, speedup: float) -> MeasuredProfile:
    """`profile` with each batch of b rows `speedup` times faster per row than single rows."""
    segments = tuple(
        s.model_copy(
            update={
                "measurements": tuple(
                    m
                    if m.batch_size == 1
                    else m.model_copy(
                        update={"median_ms": m.median_ms / speedup, "p95_ms": m.p95_ms / speedup}
                    )
                    for m in s.measurements
                )
            }
        )
        for s in profile.segments
    )
    return profile.model_copy(update={"segments": segments})


def test_a_row_sums_the_segments_and_takes_the_best_batch() -> None:
    profile = synthetic_profile(10, ms_per_gflop=50, batch_sizes=(1, 4))
    single = sum(s.at(1).median_ms for s in profile.segments)
    row = exploration_row("nano", "v1", profile, 0.9)
    assert row.latency_p50_ms == pytest.approx(single)
    assert row.latency_p95_ms == pytest.approx(1.1 * single)
    assert row.throughput == pytest.approx(1000.0 / single)  # batching gains nothing here
    assert row.best_batch == 1
    assert row.energy_mj is None
    faster = exploration_row("nano", "v1", batched(profile, 2.0), 0.9)
    assert faster.best_batch == 4
    assert faster.throughput == pytest.approx(2000.0 / single)
    measured = exploration_row("nano", "v1", with_energy(profile, 3.0), 0.9)
    assert measured.energy_mj == pytest.approx(3.0 * single)


@dataclass(frozen=True)
class SitePool:
    name: str
    profile: str
    replicas: int


def test_the_table_becomes_the_policys_pools() -> None:
    table = [
        exploration_row(device, version, synthetic_profile(8, ms_per_gflop=speed * cost), acc)
        for device, speed in (("nano", 10.0), ("pi4", 40.0))
        for version, cost, acc in (("big", 4.0, 0.95), ("small", 1.0, 0.85))
    ]
    site = policy_pools([SitePool("n", "nano", 2), SitePool("p", "pi4", 1)], table)
    assert [p.name for p in site] == ["n", "p"]
    assert site[0].replicas == 2
    assert set(site[0].versions) == {"big", "small"}
    assert site[0].versions["big"].throughput == pytest.approx(table[0].throughput)
    plan = distribute(site, 0.5 * sum(p.capacity("big", 1.0) for p in site))
    assert plan.met
    with pytest.raises(
        DistributionError, match="pool x: the exploration table has no row for 'xu4'"
    ):
        policy_pools([SitePool("x", "xu4", 1)], table)


def row(version: str, accuracy: float, latency: float, energy: float | None) -> ExplorationRow:
    return ExplorationRow("nano", version, accuracy, latency, latency, 1000 / latency, 1, energy)


def test_the_front_keeps_the_versions_no_other_beats_on_every_axis() -> None:
    table = [
        row("resnet50", 0.96, 40.0, 400.0),
        row("resnet18", 0.93, 15.0, 150.0),
        row("vgg11", 0.92, 30.0, 500.0),  # slower, hungrier and less accurate than resnet18
        row("mobilenet", 0.88, 8.0, 60.0),
    ]
    assert versions_front(table, "nano") == ("mobilenet", "resnet18", "resnet50")
    # without energy on every row, accuracy and latency alone decide
    table[3] = row("mobilenet", 0.88, 8.0, None)
    assert versions_front(table, "nano") == ("mobilenet", "resnet18", "resnet50")
    assert versions_front(table, "pi4") == ()


def test_bad_rows_are_refused_naming_the_field() -> None:
    with pytest.raises(DistributionError, match=r"accuracy of v1: expected 0\.\.1"):
        exploration_row("nano", "v1", synthetic_profile(4), 1.5)
    with pytest.raises(DistributionError, match="batch size 1 was not profiled"):
        exploration_row("nano", "v1", synthetic_profile(4, batch_sizes=(2,)), 0.9)


def test_a_row_with_exits_serves_the_expected_share_of_the_whole_model() -> None:
    profile = synthetic_profile(10, ms_per_gflop=50)
    whole = exploration_row("nano", "v1", with_energy(profile, 2.0), 0.9)
    served = with_exits(whole, 0.25)
    assert served.latency_p50_ms == pytest.approx(whole.latency_p50_ms / 4)
    assert served.throughput == pytest.approx(4 * whole.throughput)
    assert served.energy_mj == pytest.approx((whole.energy_mj or 0) / 4)
    assert (served.accuracy, served.version) == (whole.accuracy, whole.version)
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(DistributionError, match="fraction of v1"):
            with_exits(whole, bad)
