"""From a site's exploration table to each edge pool's version: the policy's pools, and the
version a pool serves when the policy gives it no share.

The exploration table has a row per (device class, version); a site's pools are named apart
from their device classes (two pools may even share one). `policy_pools` gives the policy
(`core.distribution.distribute`) each pool with its live replicas and its class's rows.

The policy assigns a version only to the pools it gives a share; every pool still runs one
version (a pool serves the version it was deployed with, and the dispatcher may give it a share
later, when another pool loses replicas). `pool_versions` keeps the policy's choice where it
made one, and gives the others their fastest version that meets the minimum accuracy (the
most spare capacity for a later re-share), else their fastest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from inferedge.core.distribution import Distribution, DistributionError, Pool, VersionFigures
from inferedge.core.exploration import ExplorationRow


class PoolLike(Protocol):
    """An edge pool as the spec names it: its name, its device class and its replicas."""

    @property
    def name(self) -> str:
        """The pool's name."""
        ...

    @property
    def profile(self) -> str:
        """Its device class (the DeviceProfile's name: the table rows' `device`)."""
        ...

    @property
    def replicas(self) -> int:
        """Replicas the pool has."""
        ...


def policy_pools(pools: Sequence[PoolLike], table: Sequence[ExplorationRow]) -> list[Pool]:
    """The policy's pools: each pool's replicas and its device class's rows of `table`.

    A pool whose class has no row is refused in one line naming it."""
    out = []
    for pool in pools:
        rows = {
            r.version: VersionFigures(r.throughput, r.accuracy)
            for r in table
            if r.device == pool.profile
        }
        if not rows:
            raise DistributionError(
                f"pool {pool.name}: the exploration table has no row for {pool.profile!r}"
            )
        out.append(Pool(pool.name, pool.replicas, rows))
    return out


def _fastest(figures: Mapping[str, VersionFigures]) -> str:
    return max(sorted(figures), key=lambda v: figures[v].throughput)


def pool_versions(
    pools: Sequence[Pool], distribution: Distribution, min_accuracy: float = 0.0
) -> dict[str, str]:
    """Each pool's version: the policy's where it gave the pool a share; otherwise the pool's
    fastest version of accuracy >= `min_accuracy`, else its fastest (by name on a tie)."""
    chosen = {a.pool: a.version for a in distribution.assignments}
    out = {}
    for pool in pools:
        if pool.name in chosen:
            out[pool.name] = chosen[pool.name]
            continue
        good = {v: f for v, f in pool.versions.items() if f.accuracy >= min_accuracy}
        out[pool.name] = _fastest(good or pool.versions)
    return out
