"""Spreading one request stream over several edge pools of different speeds, each running one
version of the model (Adaptive Workload Distribution, Taufique et al., ASP-DAC 2024).

A pool is a device class with its replicas; the exploration table gives, per (pool, version),
the throughput one replica sustains and the version's accuracy. The policy picks, per pool, a
version and a share of the stream so that the site serves the target rate with the best mean
accuracy:

- every version in use meets the minimum accuracy, so it holds for each request, not only on
  average;
- a pool is loaded to at most `max_utilization` of what its replicas sustain, so its queue
  stays bounded when arrivals are bursty;
- for one choice of versions the best shares fill the most accurate pools first, each to its
  capacity, until the target is covered (a fractional knapsack, exact); pools of equal accuracy
  fill together in proportion to their capacity, so the load spreads; the policy tries every
  choice of versions, which is a few hundred at most for the sites it is meant for (a handful of
  pools, a handful of versions), and keeps the most accurate, then the one with the most spare
  capacity in the pools that serve.

When no choice covers the target it says so, and serves the highest rate it can at the minimum
accuracy: each pool's fastest version that meets the minimum, shares by capacity.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from inferedge.core.errors import InferedgeError

MAX_CHOICES = 100_000
"""Choices of versions (the product of each pool's version count) the policy tries at most."""


class DistributionError(InferedgeError):
    """A site or a target the policy cannot work with, named in one line."""


@dataclass(frozen=True)
class VersionFigures:
    """What one replica of a pool does with one version: requests a second and accuracy."""

    throughput: float
    accuracy: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.throughput) and self.throughput > 0):
            raise DistributionError(f"throughput: expected requests/s > 0, got {self.throughput!r}")
        if not 0.0 <= self.accuracy <= 1.0:
            raise DistributionError(f"accuracy: expected 0..1, got {self.accuracy!r}")


@dataclass(frozen=True)
class Pool:
    """An edge pool: its name, its live replicas, and its row of the exploration table."""

    name: str
    replicas: int
    versions: Mapping[str, VersionFigures]

    def __post_init__(self) -> None:
        if self.replicas < 0:
            raise DistributionError(f"pool {self.name}: replicas must be >= 0, got {self.replicas}")
        if not self.versions:
            raise DistributionError(f"pool {self.name}: the exploration table has no version")

    def capacity(self, version: str, max_utilization: float) -> float:
        """Requests a second the pool may take with `version`."""
        return self.replicas * self.versions[version].throughput * max_utilization


@dataclass(frozen=True)
class Assignment:
    """One pool's part: the version it runs, its share of the stream and the rate that is."""

    pool: str
    version: str
    share: float
    rate: float
    capacity: float
    accuracy: float


@dataclass(frozen=True)
class Distribution:
    """The policy's answer for a target: each pool's part, and what the site then does."""

    target: float
    assignments: tuple[Assignment, ...]
    met: bool
    reason: str

    @property
    def rate(self) -> float:
        """Requests a second the site serves (the target when met)."""
        return sum(a.rate for a in self.assignments)

    @property
    def capacity(self) -> float:
        """Requests a second the chosen versions could take, at the utilization bound."""
        return sum(a.capacity for a in self.assignments)

    @property
    def accuracy(self) -> float:
        """The expected accuracy of a request: the versions' accuracies weighted by share."""
        return sum(a.share * a.accuracy for a in self.assignments)


def _check(
    pools: Sequence[Pool], target: float, min_accuracy: float, max_utilization: float
) -> None:
    if not pools:
        raise DistributionError("pools: expected at least one edge pool")
    names = [p.name for p in pools]
    if len(set(names)) != len(names):
        raise DistributionError(f"pools: names must be unique, got {names}")
    if not (math.isfinite(target) and target > 0):
        raise DistributionError(f"target: expected requests/s > 0, got {target!r}")
    if not 0.0 <= min_accuracy <= 1.0:
        raise DistributionError(f"min_accuracy: expected 0..1, got {min_accuracy!r}")
    if not 0.0 < max_utilization <= 1.0:
        raise DistributionError(f"max_utilization: expected 0 < u <= 1, got {max_utilization!r}")
    choices = math.prod(len(p.versions) for p in pools)
    if choices > MAX_CHOICES:
        raise DistributionError(
            f"pools: {choices} choices of versions, at most {MAX_CHOICES} (fewer pools or versions)"
        )


def _fill(
    pools: Sequence[Pool], versions: Sequence[str], target: float, max_utilization: float
) -> tuple[Assignment, ...]:
    """The best shares for one choice of versions: the most accurate pools first, each to its
    capacity, until `target` is covered (or every pool is full). Pools of equal accuracy fill
    together in proportion to their capacity, so none of them queues while another idles."""
    tiers: dict[float, list[int]] = {}
    for i, (pool, version) in enumerate(zip(pools, versions, strict=True)):
        tiers.setdefault(round(pool.versions[version].accuracy, 9), []).append(i)
    left = target
    parts: list[Assignment] = []
    for accuracy in sorted(tiers, reverse=True):
        if left <= target * 1e-9:  # float residue of a covered target is not a share
            break
        members = tiers[accuracy]
        capacities = [pools[i].capacity(versions[i], max_utilization) for i in members]
        fraction = min(1.0, left / sum(capacities)) if sum(capacities) > 0 else 0.0
        for i, capacity in zip(members, capacities, strict=True):
            if capacity * fraction > 0:
                parts.append(
                    Assignment(
                        pools[i].name,
                        versions[i],
                        0.0,
                        capacity * fraction,
                        capacity,
                        pools[i].versions[versions[i]].accuracy,
                    )
                )
        left -= sum(capacities) * fraction
    served = sum(p.rate for p in parts)
    return tuple(
        Assignment(p.pool, p.version, p.rate / served, p.rate, p.capacity, p.accuracy)
        for p in parts
    )


def _fastest(pool: Pool, versions: Sequence[str]) -> str:
    """The version of `versions` one replica of `pool` runs fastest (by name on a tie)."""
    return max(versions, key=lambda v: (pool.versions[v].throughput, v))


def distribute(
    pools: Sequence[Pool],
    target: float,
    *,
    min_accuracy: float = 0.0,
    max_utilization: float = 0.9,
) -> Distribution:
    """Each pool's version and share for `target` requests a second (see the module docstring).

    Raises DistributionError for a malformed site or target, never for one it cannot serve:
    that comes back with `met` False and the reason."""
    _check(pools, target, min_accuracy, max_utilization)
    allowed = [
        [v for v, f in sorted(p.versions.items()) if f.accuracy >= min_accuracy] for p in pools
    ]
    usable = [i for i, versions in enumerate(allowed) if versions and pools[i].replicas > 0]
    if not usable:
        return Distribution(
            target, (), False, f"no pool has a live replica with a version of accuracy >= "
            f"{min_accuracy:g}"
        )  # fmt: skip
    site = [pools[i] for i in usable]
    best: tuple[tuple[float, float], tuple[Assignment, ...]] | None = None
    for versions in itertools.product(*(allowed[i] for i in usable)):
        capacity = sum(p.capacity(v, max_utilization) for p, v in zip(site, versions, strict=True))
        if capacity < target:
            continue
        parts = _fill(site, versions, target, max_utilization)
        accuracy = sum(a.share * a.accuracy for a in parts)
        # round so float noise in equal accuracies does not pick the less spare choice; spare
        # capacity counts in the pools that serve (an idle pool's version is not in the answer)
        key = (round(accuracy, 9), round(sum(a.capacity for a in parts) - target, 9))
        if best is None or key > best[0]:
            best = (key, parts)
    if best is not None:
        return Distribution(target, best[1], True, f"{target:g} requests/s met")
    fastest = [_fastest(pools[i], allowed[i]) for i in usable]
    capacity = sum(p.capacity(v, max_utilization) for p, v in zip(site, fastest, strict=True))
    parts = _fill(site, fastest, capacity, max_utilization)
    return Distribution(
        target,
        parts,
        False,
        f"{target:g} requests/s exceeds the site's {capacity:.4g} at accuracy >= "
        f"{min_accuracy:g} (each pool's fastest such version, {max_utilization:.0%} utilization)",
    )


def _parts(
    live: Sequence[Pool],
    versions: Mapping[str, str],
    shares: Mapping[str, float],
    rate: float,
    max_utilization: float,
) -> tuple[Assignment, ...]:
    """The comparison policies' assignments: each live pool's named version and given share."""
    return tuple(
        Assignment(
            p.name,
            versions[p.name],
            shares[p.name],
            rate * shares[p.name],
            p.capacity(versions[p.name], max_utilization),
            p.versions[versions[p.name]].accuracy,
        )
        for p in live
    )


def by_capacity(
    pools: Sequence[Pool],
    versions: Mapping[str, str],
    target: float,
    *,
    max_utilization: float = 0.9,
) -> Distribution:
    """The comparison policies' answer: each pool runs the version `versions` names for it, its
    share in proportion to what it takes; the site serves the target, or what it can."""
    _check(pools, target, 0.0, max_utilization)
    live = [p for p in pools if p.replicas > 0]
    if not live:
        return Distribution(target, (), False, "no pool has a live replica")
    for pool in live:
        if versions.get(pool.name) not in pool.versions:
            raise DistributionError(
                f"versions: pool {pool.name} has no version {versions.get(pool.name)!r}"
            )
    takes = {p.name: p.capacity(versions[p.name], max_utilization) for p in live}
    capacity = sum(takes.values())
    rate = min(target, capacity)
    parts = _parts(
        live, versions, {p: t / capacity for p, t in takes.items()}, rate, max_utilization
    )
    met = capacity >= target
    reason = (
        f"{target:g} requests/s met"
        if met
        else f"{target:g} requests/s exceeds the site's {capacity:.4g} with these versions"
    )
    return Distribution(target, parts, met, reason)


def equal_shares(
    pools: Sequence[Pool], version: str, target: float, *, max_utilization: float = 0.9
) -> Distribution:
    """Round robin: one version everywhere, the same share for every live pool, so the site
    saturates when its slowest pool does."""
    _check(pools, target, 0.0, max_utilization)
    live = [p for p in pools if p.replicas > 0]
    if not live:
        return Distribution(target, (), False, "no pool has a live replica")
    missing = [p.name for p in live if version not in p.versions]
    if missing:
        raise DistributionError(f"version: {version!r} is not in the table of pools {missing}")
    slowest = min(p.capacity(version, max_utilization) for p in live)
    rate = min(target, slowest * len(live))
    shares = {p.name: 1 / len(live) for p in live}
    parts = _parts(live, {p.name: version for p in live}, shares, rate, max_utilization)
    met = rate >= target
    reason = (
        f"{target:g} requests/s met"
        if met
        else f"{target:g} requests/s exceeds {rate:.4g}: equal shares saturate the slowest pool"
    )
    return Distribution(target, parts, met, reason)
