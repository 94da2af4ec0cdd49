"""A site's exploration table from what a pipeline already has: its profiles and calibration.

A version of the model is served either whole with its early exits at the calibrated
threshold, or truncated at its k-th edge exit (every request answers there). Either way a
request costs on average a share of the whole model's time, and that share is known from the
plan the version was exported with: the calibration's expected latency (or the k-th exit's
planned latency) over the plan's full path. Each device class's row is then its profile's whole
model, scaled by that share (`core.exploration.with_exits`), with the version's accuracy.
`inferedge run` and the operator build the table the same way from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from inferedge.core.distribution import DistributionError
from inferedge.core.exploration import ExplorationRow, exploration_row, with_exits
from inferedge.core.manifest import Calibration
from inferedge.core.plan import Plan
from inferedge.core.profile import MeasuredProfile


@dataclass(frozen=True)
class ServedVersion:
    """One version as served: its label, accuracy, share of the whole model's time, and the
    edge exit it is truncated at (None: the whole model with its exits)."""

    label: str
    accuracy: float
    share: float
    answer_at: int | None = None


def served_version(
    label: str, plan: Plan, calibration: Calibration, answer_at: int | None = None
) -> ServedVersion:
    """`label`'s figures from the plan and calibration of the set it is served from."""
    whole = plan.final_latency_ms
    if whole <= 0:
        raise DistributionError(f"version {label}: its plan predicts no time for the full path")
    if answer_at is None:
        share = calibration.expected_latency_ms / whole
        return ServedVersion(label, calibration.accuracy, min(max(share, 1e-6), 1.0))
    edge_exits = [e for e in plan.exits if e.part == "edge"]
    if not 1 <= answer_at <= len(edge_exits):
        raise DistributionError(
            f"version {label}: the plan placed {len(edge_exits)} edge exits, not {answer_at}"
        )
    exit_point = edge_exits[answer_at - 1]
    accuracy = calibration.exit_accuracy.get(exit_point.cut_index)
    if accuracy is None:
        raise DistributionError(
            f"version {label}: the calibration has no accuracy for the exit at cut "
            f"{exit_point.cut_index}"
        )
    share = min(max(exit_point.latency_ms / whole, 1e-6), 1.0)
    return ServedVersion(label, accuracy, share, answer_at)


def site_rows(
    classes: Mapping[str, MeasuredProfile], version: ServedVersion
) -> list[ExplorationRow]:
    """`version`'s row on every device class, from each class's profile of its model."""
    return [
        with_exits(exploration_row(name, version.label, profile, version.accuracy), version.share)
        for name, profile in classes.items()
    ]
