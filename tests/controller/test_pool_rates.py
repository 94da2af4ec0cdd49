"""The arithmetic of the pools' measured rates (`controller.pool_rates`), and which dispatcher
pods are read and who they are (`controller.dispatcher_reader`): pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from inferedge.controller.dispatcher_reader import dispatcher_pods, pod_identity
from inferedge.controller.pool_rates import (
    CounterRead,
    PodRates,
    pod_rates,
    rate_patch,
    shown_rate,
    site_rates,
)


def test_a_pools_rate_is_its_counters_growth_over_the_time_between_two_reads() -> None:
    before = CounterRead(10.0, {"nano": 100, "xu4": 40, "pi4": 7})
    now = CounterRead(14.0, {"nano": 500, "xu4": 50, "pi4": 7})
    assert pod_rates(before, now) == {"nano": 100.0, "xu4": 2.5, "pi4": 0.0}


def test_a_first_read_or_no_time_between_gives_no_rate_yet() -> None:
    now = CounterRead(3.0, {"nano": 9})
    assert pod_rates(None, now) is None
    assert pod_rates(CounterRead(3.0, {"nano": 1}), now) is None
    assert pod_rates(CounterRead(4.0, {"nano": 1}), now) is None  # the clock is monotonic


def test_a_counter_that_went_down_is_a_restarted_dispatcher_and_gives_no_rate() -> None:
    before = CounterRead(1.0, {"nano": 300, "xu4": 20})
    # Only one counter is lower, yet the other's growth means nothing either: they all restart.
    assert pod_rates(before, CounterRead(2.0, {"nano": 10, "xu4": 25})) is None
    # A counter that stayed is no restart.
    assert pod_rates(before, CounterRead(2.0, {"nano": 300, "xu4": 20})) == {
        "nano": 0.0,
        "xu4": 0.0,
    }


def test_only_pools_both_reads_name_have_a_rate() -> None:
    before = CounterRead(0.0, {"nano": 0, "gone": 5})
    assert pod_rates(before, CounterRead(0.5, {"nano": 10, "new": 4})) == {"nano": 20.0}


def test_several_dispatcher_pods_sum_and_a_pool_is_known_only_when_each_gave_its_rate() -> None:
    a = PodRates(frozenset({"nano", "xu4", "pi4"}), {"nano": 10.0, "xu4": 2.0, "pi4": 1.0})
    b = PodRates(frozenset({"nano", "xu4"}), {"nano": 5.5, "xu4": 0.5})
    assert site_rates([a, b]) == {"nano": 15.5, "xu4": 2.5, "pi4": 1.0}
    first = PodRates(frozenset({"nano"}), None)  # a new pod (say mid-rollout): no rate yet
    assert site_rates([a, first]) == {"xu4": 2.0, "pi4": 1.0}
    partial = PodRates(frozenset({"nano", "xu4"}), {"nano": 1.0})
    assert site_rates([a, partial]) == {"nano": 11.0, "pi4": 1.0}
    assert site_rates([]) == {}


@pytest.mark.parametrize(
    ("rate", "shown"),
    [(123.456, 123.0), (0.012345, 0.0123), (59.96, 60.0), (0.0, 0.0), (-1e-9, 0.0)],
)
def test_a_shown_rate_has_three_significant_digits(rate: float, shown: float) -> None:
    assert shown_rate(rate) == shown


def pools(*entries: tuple[str, float | None]) -> list[dict[str, Any]]:
    """status.pools as read back from the API (unset figures absent)."""
    found = []
    for name, measured in entries:
        pool: dict[str, Any] = {"name": name, "profile": "p", "version": "v", "share": 0.5}
        if measured is not None:
            pool["measuredRate"] = measured
        found.append(pool)
    return found


def test_the_patch_sets_the_named_pools_changed_rates_each_guarded_by_its_name() -> None:
    status = pools(("nano", None), ("xu4", 2.5), ("pi4", 1.0))
    ops = rate_patch(status, {"nano": 100.04, "xu4": 2.5, "pi4": 0.5, "other": 3.0})
    assert ops == [
        {"op": "test", "path": "/status/pools/0/name", "value": "nano"},
        {"op": "add", "path": "/status/pools/0/measuredRate", "value": 100.0},
        {"op": "test", "path": "/status/pools/2/name", "value": "pi4"},
        {"op": "add", "path": "/status/pools/2/measuredRate", "value": 0.5},
    ]
    # The same figures as shown: nothing to write.
    assert rate_patch(status, {"xu4": 2.504, "pi4": 1.0}) == []
    assert rate_patch([], {"nano": 1.0}) == []
    assert rate_patch([{"name": 5}, "junk"], {"nano": 1.0}) == []


def pod(
    name: str, *, uid: str | None = "u1", restarts: int | None = 0, phase: str = "Running"
) -> dict[str, Any]:
    """A dispatcher pod as the API lists it."""
    meta: dict[str, Any] = {"name": name}
    if uid is not None:
        meta["uid"] = uid
    status: dict[str, Any] = {"phase": phase, "podIP": "10.1.2.3"}
    if restarts is not None:
        status["containerStatuses"] = [{"name": "dispatcher", "restartCount": restarts}]
    container = {"name": "dispatcher", "ports": [{"name": "http", "containerPort": 8080}]}
    return {"metadata": meta, "spec": {"containers": [container]}, "status": status}


def test_a_pod_is_known_by_its_uid_and_restarts() -> None:
    assert pod_identity(pod("d-1")) == "u1#0"
    assert pod_identity(pod("d-1", restarts=2)) != pod_identity(pod("d-1"))
    assert pod_identity(pod("d-1", uid=None, restarts=None)) == "d-1#0"
    odd = pod("d-1")
    odd["status"]["containerStatuses"] = [{"restartCount": "3"}, "junk"]
    assert pod_identity(odd) == "u1#0"


def test_the_running_dispatcher_pods_are_read_at_their_distribution_url() -> None:
    found = dispatcher_pods(
        [pod("d-2", uid="u2", restarts=1), pod("d-1"), pod("d-0", phase="Pending")]
    )
    assert [(p.pod.name, p.identity) for p in found] == [("d-1", "u1#0"), ("d-2", "u2#1")]
    assert str(found[0].pod.url) == "http://10.1.2.3:8080/distribution"
