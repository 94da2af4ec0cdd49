"""The site's resource manager: when to decide the distribution again, and from what table.

A finite-state machine driven by what happens at the site (Adaptive Workload Distribution's
resource manager, there triggered by new requests): the target rate changes, a pool gains or
loses live replicas, or a pool's measured throughput drifts from its exploration-table entry.
Each event gives the next state and, when the distribution must change, the new one
(`core.distribution.distribute`). Nothing here does I/O: the dispatcher feeds it events and
applies what it returns, and every transition is unit-tested without a site.

A measurement within `drift_bound` of the table's figure changes nothing, so noise does not make
the shares flap; past it, the table takes the measured figure and the policy decides again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from inferedge.core.distribution import (
    Distribution,
    DistributionError,
    Pool,
    VersionFigures,
    distribute,
)


@dataclass(frozen=True)
class TargetChanged:
    """The site's target rate (requests a second) is now `rate`."""

    rate: float


@dataclass(frozen=True)
class ReplicasChanged:
    """`pool` now has `replicas` live replicas (one died, or the Deployment scaled)."""

    pool: str
    replicas: int


@dataclass(frozen=True)
class ThroughputMeasured:
    """One replica of `pool` was measured at `throughput` requests a second with `version`."""

    pool: str
    version: str
    throughput: float


SiteEvent = TargetChanged | ReplicasChanged | ThroughputMeasured


@dataclass(frozen=True)
class ManagerSettings:
    """The policy's bounds and how far a measurement may drift before it counts."""

    min_accuracy: float = 0.0
    max_utilization: float = 0.9
    drift_bound: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 < self.drift_bound < 1.0:
            raise DistributionError(
                f"drift_bound: expected a fraction in (0, 1), got {self.drift_bound!r}"
            )


@dataclass(frozen=True)
class SiteState:
    """The table the manager decides from, the target, the distribution served, and why it
    was last decided."""

    pools: tuple[Pool, ...]
    target: float
    distribution: Distribution
    decisions: int
    cause: str


def start(pools: Sequence[Pool], target: float, settings: ManagerSettings) -> SiteState:
    """The first state: the distribution for `target` from the initial exploration table."""
    return SiteState(tuple(pools), target, _decide(pools, target, settings), 1, "start")


def _decide(pools: Sequence[Pool], target: float, settings: ManagerSettings) -> Distribution:
    return distribute(
        pools,
        target,
        min_accuracy=settings.min_accuracy,
        max_utilization=settings.max_utilization,
    )


def _pool(state: SiteState, name: str) -> int:
    for i, pool in enumerate(state.pools):
        if pool.name == name:
            return i
    names = ", ".join(p.name for p in state.pools)
    raise DistributionError(f"pool: no pool {name!r} at this site (pools: {names})")


def step(
    state: SiteState, event: SiteEvent, settings: ManagerSettings
) -> tuple[SiteState, Distribution | None]:
    """The state after `event`, and the new distribution when it changed what pools run."""
    if isinstance(event, TargetChanged):
        if event.rate == state.target:
            return state, None
        pools, cause = state.pools, f"target {state.target:g} -> {event.rate:g} requests/s"
        target = event.rate
    elif isinstance(event, ReplicasChanged):
        i = _pool(state, event.pool)
        if event.replicas == state.pools[i].replicas:
            return state, None
        pool = replace(state.pools[i], replicas=event.replicas)
        pools = (*state.pools[:i], pool, *state.pools[i + 1 :])
        cause = f"pool {event.pool}: {state.pools[i].replicas} -> {event.replicas} replicas"
        target = state.target
    else:
        i = _pool(state, event.pool)
        known = state.pools[i].versions.get(event.version)
        if known is None:
            raise DistributionError(
                f"version: pool {event.pool} has no version {event.version!r} in its table"
            )
        if not (math.isfinite(event.throughput) and event.throughput > 0):
            raise DistributionError(
                f"throughput: expected requests/s > 0, got {event.throughput!r}"
            )
        drift = event.throughput / known.throughput - 1.0
        if abs(drift) <= settings.drift_bound:
            return state, None
        versions = {
            **state.pools[i].versions,
            event.version: VersionFigures(event.throughput, known.accuracy),
        }
        pools = (
            *state.pools[:i],
            replace(state.pools[i], versions=versions),
            *state.pools[i + 1 :],
        )
        cause = (
            f"pool {event.pool}: {event.version} measured at {event.throughput:.3g} requests/s, "
            f"{drift:+.0%} from the table"
        )
        target = state.target
    distribution = _decide(pools, target, settings)
    changed = distribution != state.distribution
    new = SiteState(pools, target, distribution, state.decisions + 1, cause)
    return new, distribution if changed else None
