"""The site's resource manager: every transition, without a site."""

from __future__ import annotations

import pytest

from inferedge.core.distribution import DistributionError
from inferedge.core.resource_manager import (
    ManagerSettings,
    ReplicasChanged,
    TargetChanged,
    ThroughputMeasured,
    start,
    step,
)
from tests.core.test_distribution import site

SETTINGS = ManagerSettings()


def test_it_starts_on_the_policys_distribution_for_the_target() -> None:
    state = start(site(), 8.0, SETTINGS)
    assert state.distribution.met
    assert state.decisions == 1
    assert state.cause == "start"


def test_a_new_target_redecides_and_the_same_target_does_nothing() -> None:
    state = start(site(), 8.0, SETTINGS)
    same, decided = step(state, TargetChanged(8.0), SETTINGS)
    assert decided is None
    assert same is state
    heavier, decided = step(state, TargetChanged(50.0), SETTINGS)
    assert decided is not None
    assert decided.rate == pytest.approx(50.0)
    assert heavier.cause == "target 8 -> 50 requests/s"
    assert heavier.decisions == 2


def test_a_dead_replica_moves_its_share_to_the_others() -> None:
    state = start(site(), 20.0, SETTINGS)
    assert "nano" in {a.pool for a in state.distribution.assignments}
    down, decided = step(state, ReplicasChanged("nano", 0), SETTINGS)
    assert decided is not None
    assert "nano" not in {a.pool for a in decided.assignments}
    assert decided.met
    assert decided.rate == pytest.approx(20.0)
    assert down.cause == "pool nano: 1 -> 0 replicas"
    # and back: the first distribution again
    up, again = step(down, ReplicasChanged("nano", 1), SETTINGS)
    assert again == state.distribution
    assert up.pools == state.pools


def test_a_measurement_within_the_bound_changes_nothing_and_past_it_updates_the_table() -> None:
    state = start(site(), 40.0, SETTINGS)
    nano_resnet18 = 10.0 * 2.5
    noise, decided = step(
        state, ThroughputMeasured("nano", "resnet18", 0.85 * nano_resnet18), SETTINGS
    )
    assert decided is None
    assert noise is state
    slow, decided = step(
        state, ThroughputMeasured("nano", "resnet18", 0.5 * nano_resnet18), SETTINGS
    )
    assert slow.pools[0].versions["resnet18"].throughput == pytest.approx(0.5 * nano_resnet18)
    assert "-50% from the table" in slow.cause
    assert slow.decisions == 2
    # the slower Nano can no longer carry its share with resnet18: a lighter mix, same rate
    assert decided is not None
    assert decided.rate == pytest.approx(40.0)
    assert decided.accuracy < state.distribution.accuracy


def test_a_redecision_that_picks_the_same_distribution_reports_none() -> None:
    state = start(site(), 8.0, SETTINGS)
    # nobody runs the mobilenet at 8 requests/s: measuring it slower changes the table only
    assert {a.version for a in state.distribution.assignments} == {"resnet50"}
    later, decided = step(state, ThroughputMeasured("xu4", "mobilenet", 10.0), SETTINGS)
    assert decided is None
    assert later.decisions == 2


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        (ReplicasChanged("rpi5", 1), "no pool 'rpi5' at this site"),
        (ThroughputMeasured("nano", "vgg", 1.0), "pool nano has no version 'vgg'"),
        (ThroughputMeasured("nano", "resnet18", float("nan")), "throughput: expected"),
        (ThroughputMeasured("nano", "resnet18", -1.0), "throughput: expected"),
        (TargetChanged(0.0), "target: expected requests/s > 0"),
    ],
)
def test_bad_events_are_refused_naming_the_field(event: object, fragment: str) -> None:
    state = start(site(), 8.0, SETTINGS)
    with pytest.raises(DistributionError, match=fragment):
        step(state, event, SETTINGS)  # type: ignore[arg-type]


def test_settings_are_checked() -> None:
    with pytest.raises(DistributionError, match="drift_bound"):
        ManagerSettings(drift_bound=0.0)
