"""Each pool's measured rate from its site's dispatcher counters: pure arithmetic, no I/O.

A dispatcher counts the requests each pool answered since it started (`GET /distribution`,
`PoolState.answered`). Two reads of the same dispatcher pod, at two times of the reader's
monotonic clock, give each pool's requests a second in between. A first read gives no rate yet,
and neither does a counter that went down (the dispatcher restarted between the reads: its
counters start again from 0, so no difference of them means anything). A site with several
dispatcher pods served what they served together: a pool's rate is the sum over the pods that
name it, known only when each of them gave one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

RATE_DIGITS: Final = 3
"""Significant digits of a rate in the status: it is written only when the figure changes, and
noise is not news."""


@dataclass(frozen=True)
class CounterRead:
    """One read of a dispatcher pod: when (monotonic seconds), and each pool's answered count."""

    at_s: float
    answered: Mapping[str, int]


@dataclass(frozen=True)
class PodRates:
    """What one dispatcher pod says of its pools: the pools it names, and their rates since its
    previous read (None: no rate yet)."""

    pools: frozenset[str]
    rates: Mapping[str, float] | None


def pod_rates(before: CounterRead | None, now: CounterRead) -> dict[str, float] | None:
    """Each pool's requests a second between two reads of one dispatcher pod, for the pools both
    reads name; None when there is no rate yet (a first read, no time between the reads, or a
    counter that went down: the dispatcher restarted)."""
    if before is None or now.at_s <= before.at_s:
        return None
    common = before.answered.keys() & now.answered.keys()
    if any(now.answered[pool] < before.answered[pool] for pool in common):
        return None
    elapsed = now.at_s - before.at_s
    return {pool: (now.answered[pool] - before.answered[pool]) / elapsed for pool in common}


def site_rates(pods: Sequence[PodRates]) -> dict[str, float]:
    """Each pool's rate over a site's dispatcher pods: the sum over the pods naming it, for the
    pools every such pod gave a rate for."""
    totals: dict[str, float] = {}
    unknown: set[str] = set()
    for pod in pods:
        for pool in pod.pools:
            rate = None if pod.rates is None else pod.rates.get(pool)
            if rate is None:
                unknown.add(pool)
            else:
                totals[pool] = totals.get(pool, 0.0) + rate
    return {pool: rate for pool, rate in totals.items() if pool not in unknown}


def shown_rate(rate: float) -> float:
    """A rate as the status shows it: a few significant digits, never below 0."""
    return float(f"{max(rate, 0.0):.{RATE_DIGITS}g}")


def rate_patch(pools: Sequence[Any], rates: Mapping[str, float]) -> list[dict[str, Any]]:
    """RFC 6902 operations setting `status.pools[i].measuredRate` of each pool (by name) whose
    shown rate differs from the one in `pools` (the status as last seen); each is guarded by a
    `test` of the pool's name at that index, so a list that changed meanwhile refuses the patch
    instead of taking a rate on the wrong pool. [] when nothing changes."""
    ops: list[dict[str, Any]] = []
    for index, pool in enumerate(pools):
        name = pool.get("name") if isinstance(pool, Mapping) else None
        if not isinstance(name, str) or name not in rates:
            continue
        rate = shown_rate(rates[name])
        if pool.get("measuredRate") == rate:
            continue
        at = f"/status/pools/{index}"
        ops.append({"op": "test", "path": f"{at}/name", "value": name})
        ops.append({"op": "add", "path": f"{at}/measuredRate", "value": rate})
    return ops
