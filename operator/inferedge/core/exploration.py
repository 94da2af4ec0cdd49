"""The exploration table: every version of the model on every edge device class.

One row per (device class, version), from that version's profile on that class and its
measured accuracy: the whole model's latency for one request (median and p95, the sums of the
segments' warm, back-to-back times, as a loaded replica runs; the planner's served times model
an idle edge's request instead), the throughput one replica sustains (the best over the
profiled batch sizes: a batch of b rows in t ms is 1000 b / t requests a second), and the
energy of one request where the board's rails measured it. The p95 of a sum is not the sum of
p95s; the sum bounds it from above, which is the side to err on for a rate a pool promises.

`pools` turns the table into the distribution policy's input (`core.distribution`), and
`versions_front` names the versions no other beats on accuracy, latency and energy at once on
a device class: the triangle Infer-EDGE draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from inferedge.core.distribution import DistributionError
from inferedge.core.profile import MeasuredProfile


@dataclass(frozen=True)
class ExplorationRow:
    """One version on one device class."""

    device: str
    version: str
    accuracy: float
    latency_p50_ms: float
    latency_p95_ms: float
    throughput: float
    best_batch: int
    energy_mj: float | None
    measured: bool = False
    """Latency and throughput measured as served (`inferedge run`), not from the profile."""


def exploration_row(
    device: str, version: str, profile: MeasuredProfile, accuracy: float
) -> ExplorationRow:
    """The table's row for `version` on `device`, from its profile there and its accuracy."""
    if not 0.0 <= accuracy <= 1.0:
        raise DistributionError(f"accuracy of {version}: expected 0..1, got {accuracy!r}")
    one = [segment.at(1) for segment in profile.segments] if 1 in profile.batch_sizes else None
    if one is None:
        raise DistributionError(
            f"profile of {version} on {device}: batch size 1 was not profiled "
            f"(got {list(profile.batch_sizes)})"
        )
    rates = {}
    for batch in profile.batch_sizes:
        total_ms = sum(segment.at(batch).median_ms for segment in profile.segments)
        rates[batch] = 1000.0 * batch / total_ms if total_ms > 0 else float("inf")
    best_batch = max(sorted(rates), key=lambda b: rates[b])
    energies = [m.energy_mj for m in one]
    return ExplorationRow(
        device=device,
        version=version,
        accuracy=accuracy,
        latency_p50_ms=sum(m.median_ms for m in one),
        latency_p95_ms=sum(m.p95_ms for m in one),
        throughput=rates[best_batch],
        best_batch=best_batch,
        energy_mj=None if any(e is None for e in energies) else sum(e or 0.0 for e in energies),
    )


def with_exits(row: ExplorationRow, fraction: float) -> ExplorationRow:
    """`row` for the version served with its early exits, where a request costs on average
    `fraction` of the whole model's time (the version's expected time at its threshold over
    its full path's, from its evaluation on the class it was planned on): the same fraction of
    this class's times, and of its energy where measured."""
    if not (math.isfinite(fraction) and 0.0 < fraction <= 1.0):
        raise DistributionError(f"fraction of {row.version}: expected 0 < f <= 1, got {fraction!r}")
    energy = None if row.energy_mj is None else row.energy_mj * fraction
    return replace(
        row,
        latency_p50_ms=row.latency_p50_ms * fraction,
        latency_p95_ms=row.latency_p95_ms * fraction,
        throughput=row.throughput / fraction,
        energy_mj=energy,
    )


def versions_front(table: Sequence[ExplorationRow], device: str) -> tuple[str, ...]:
    """The versions on `device` that no other version beats on accuracy, latency and energy
    together (energy counts only where every row has it), in order of latency."""
    rows = [r for r in table if r.device == device]
    with_energy = all(r.energy_mj is not None for r in rows)

    def key(r: ExplorationRow) -> tuple[float, ...]:
        # larger is better on every axis
        return (r.accuracy, -r.latency_p50_ms, *((-(r.energy_mj or 0.0),) if with_energy else ()))

    def dominated(r: ExplorationRow) -> bool:
        mine = key(r)
        for other in rows:
            theirs = key(other)
            if (
                other is not r
                and all(t >= m for t, m in zip(theirs, mine, strict=True))
                and theirs != mine
            ):
                return True
        return False

    front = [r for r in rows if not dominated(r)]
    return tuple(r.version for r in sorted(front, key=lambda r: (r.latency_p50_ms, r.version)))
