"""Live replicas from heartbeats, and their measured throughput: every transition, no clock."""

from __future__ import annotations

import pytest

from inferedge.core.resource_manager import ReplicasChanged, ThroughputMeasured
from inferedge.core.site_replicas import MIN_ANSWERS, Beat, Replicas, gone, heard, silent

TABLE = Replicas({"nano": "resnet18", "pi4": "mobilenet_v2"})


def test_a_first_beat_adds_a_replica_and_tells_its_pools_count() -> None:
    table, events = heard(TABLE, Beat("nano", "nano-0", 0, 0.0), now=1.0)
    assert events == [ReplicasChanged("nano", 1)]
    table, events = heard(table, Beat("nano", "nano-1", 0, 0.0), now=1.1)
    assert events == [ReplicasChanged("nano", 2)]
    assert table.count("nano") == 2
    assert table.of("nano") == ("nano-0", "nano-1")
    assert table.count("pi4") == 0


def test_a_beat_of_an_unknown_pool_changes_nothing() -> None:
    assert heard(TABLE, Beat("xu4", "xu4-0", 5, 1.0), now=1.0) == (TABLE, [])


def test_throughput_is_answers_per_busy_second_once_enough_answers_lie_between() -> None:
    table, _ = heard(TABLE, Beat("nano", "n", 10, 1.0), now=0.0)
    table, events = heard(table, Beat("nano", "n", 10 + MIN_ANSWERS - 1, 2.0), now=0.5)
    assert events == []
    table, events = heard(table, Beat("nano", "n", 10 + 2 * MIN_ANSWERS, 3.0), now=1.0)
    assert events == [ThroughputMeasured("nano", "resnet18", 2 * MIN_ANSWERS / 2.0)]
    # The next measurement starts where this one ended.
    table, events = heard(table, Beat("nano", "n", 10 + 3 * MIN_ANSWERS, 4.0), now=1.5)
    assert events == [ThroughputMeasured("nano", "resnet18", MIN_ANSWERS / 1.0)]


def test_a_restarted_replica_starts_its_counters_again_without_a_false_measurement() -> None:
    table, _ = heard(TABLE, Beat("nano", "n", 500, 10.0), now=0.0)
    table, events = heard(table, Beat("nano", "n", 3, 0.1), now=1.0)
    assert events == []  # same pool, same count: nothing to decide
    table, events = heard(table, Beat("nano", "n", 3 + MIN_ANSWERS, 0.6), now=2.0)
    assert events == [ThroughputMeasured("nano", "resnet18", pytest.approx(MIN_ANSWERS / 0.5))]


def test_a_replica_moved_to_another_pool_changes_both_counts() -> None:
    table, _ = heard(TABLE, Beat("nano", "r", 0, 0.0), now=0.0)
    table, events = heard(table, Beat("pi4", "r", 0, 0.0), now=1.0)
    assert events == [ReplicasChanged("nano", 0), ReplicasChanged("pi4", 1)]


def test_silent_replicas_are_found_and_dropped_with_their_pools_new_counts() -> None:
    table, _ = heard(TABLE, Beat("nano", "a", 0, 0.0), now=0.0)
    table, _ = heard(table, Beat("nano", "b", 0, 0.0), now=1.0)
    table, _ = heard(table, Beat("pi4", "c", 0, 0.0), now=0.2)
    assert silent(table, now=1.5, timeout_s=1.5) == []
    assert silent(table, now=1.75, timeout_s=1.5) == ["a", "c"]
    table, events = gone(table, ["a", "c"])
    assert events == [ReplicasChanged("nano", 1), ReplicasChanged("pi4", 0)]
    assert gone(table, ["a"]) == (table, [])
