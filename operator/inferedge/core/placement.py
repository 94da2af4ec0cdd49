"""Early-exit placement inside one part of a split network.

An exit is placed at a cut point; its position along the part is measured by the part's cumulative
cost (FLOPs or measured latency), normalised to u in [0, 1] from the part's start to its end.
`n` exits get target positions u_j = F^-1(j / m), j = 1..n, where F is the placement distribution
and m = n when the part's end may hold an exit (the edge part: the last edge exit sits at the
split, so the edge tests its deepest features before paying for the transfer), and m = n + 1 when
the part's end already holds the final classifier (the cloud part). Each target then snaps to the
nearest free admissible cut point, keeping the exits in order. The exact definitions, with a
figure, are in docs/planning.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Placement = Literal["linear", "pareto"]

# The 80-20 rule: the top 20% hold 80% of the total, 0.2 ** (1 - 1/alpha) = 0.8, so alpha = log4(5).
PARETO_80_20_ALPHA = 1.161


def linear_targets(n: int, m: int) -> list[float]:
    """Evenly spaced normalised positions j/m, j = 1..n."""
    return [j / m for j in range(1, n + 1)]


def pareto_quantile(q: float, x_min: float, x_max: float, alpha: float) -> float:
    """Quantile of a Pareto(alpha, x_min) distribution truncated to [x_min, x_max]."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} outside [0, 1]")
    if not 0.0 < x_min <= x_max:
        raise ValueError(f"need 0 < x_min <= x_max, got {x_min}, {x_max}")
    if q == 1.0:  # exact, and safe where (x_min / x_max) ** alpha underflows to zero
        return x_max
    tail = (x_min / x_max) ** alpha
    return min(x_max, float(x_min * (1.0 - q * (1.0 - tail)) ** (-1.0 / alpha)))


def pareto_targets(n: int, m: int, u_min: float, alpha: float) -> list[float]:
    """Normalised positions at the j/m quantiles of a Pareto truncated to [u_min, 1].

    `u_min` is the normalised cost of the part's first admissible cut point: the Pareto scale
    must be positive, and nothing can be placed before the first cut anyway.
    """
    return [pareto_quantile(j / m, u_min, 1.0, alpha) for j in range(1, n + 1)]


def snap(targets: Sequence[float], candidates: Sequence[float]) -> list[int]:
    """Pick, for each target in order, the nearest candidate (by position), distinct and ordered.

    Returns indices into `candidates` (which must be sorted ascending). Each choice leaves enough
    candidates after it for the remaining targets. Ties go to the deeper candidate, which is the
    post-activation tensor when a conv, norm and activation share one cumulative cost.
    """
    n = min(len(targets), len(candidates))
    chosen: list[int] = []
    lo = 0
    for j in range(n):
        hi = len(candidates) - (n - j)  # inclusive upper bound that leaves room for the rest
        best = lo
        best_dist = abs(candidates[lo] - targets[j])
        for i in range(lo + 1, hi + 1):
            dist = abs(candidates[i] - targets[j])
            if dist <= best_dist:
                best, best_dist = i, dist
        chosen.append(best)
        lo = best + 1
    return chosen


def place_exits(
    n: int,
    positions: Sequence[float],
    *,
    end_is_exit: bool,
    placement: Placement,
    alpha: float = PARETO_80_20_ALPHA,
) -> list[int]:
    """Choose up to `n` of the admissible cut points for exits.

    `positions` are the admissible cut points' normalised costs in [0, 1], ascending. Returns
    indices into `positions`. Fewer than `n` come back when fewer cut points are admissible.
    """
    if n <= 0 or not positions:
        return []
    m = n if end_is_exit else n + 1
    if placement == "linear":
        targets = linear_targets(n, m)
    else:
        positive = [p for p in positions if p > 0.0]
        u_min = min(positive) if positive else 1.0
        targets = pareto_targets(n, m, min(u_min, 1.0), alpha)
    return snap(targets, positions)
