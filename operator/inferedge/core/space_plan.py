"""The plan an operating space is trained and exported from.

A pipeline that adapts at run time is not built for one (split, exits) but for all the points
its artifacts can serve. That is one plan whose exits are every candidate cut and whose split is
the deepest the edge can hold: exported as usual, its edge part is the chain of segments from the
input to that split, ending at every candidate, and its cloud part the chain on from there. Any
split among those segment boundaries ("stops") and any exits among the candidates are then a
selection of files already there: a run-time switch loads nothing and retrains nothing.

The edge's memory bounds the deepest split, as the memory strategy bounds its split: the
prefix's parameters and peak activation must fit the device.
"""

from __future__ import annotations

from collections.abc import Sequence

from inferedge.core.errors import PlanningError
from inferedge.core.operating_space import spread_cuts
from inferedge.core.plan import Plan, PlanRequest
from inferedge.core.planner import Tables, assemble_plan, build_tables, edge_memory_bytes
from inferedge.core.profile import MeasuredProfile
from inferedge.core.roles import Role


def deepest_split(t: Tables, device_memory_bytes: int | None) -> int:
    """The deepest cut whose edge prefix fits `device_memory_bytes` (all of them when the
    device declares no memory); 0 when not even the first segment fits."""
    if device_memory_bytes is None:
        return t.num_cuts
    fits = [k for k, need in enumerate(edge_memory_bytes(t)) if need <= device_memory_bytes]
    return max(fits, default=0)


def candidate_cuts(t: Tables, count: int | None) -> list[int]:
    """Where exit heads are trained: every inner cut (`count` None), else `count` of them spread
    along the edge's cost."""
    if count is None:
        return list(range(1, t.num_cuts))
    if count < 1:
        raise PlanningError(f"candidate count: expected >= 1, got {count}")
    return spread_cuts(t, count)


def stops(candidates: Sequence[int], max_split: int, final_cut: int) -> tuple[int, ...]:
    """The segment boundaries a space's files are cut at: the input, every candidate, the
    deepest split and the output. Splits are the stops up to the deepest split."""
    return tuple(sorted({0, *candidates, max_split, final_cut}))


def make_space_plan(
    edge: MeasuredProfile,
    cloud: MeasuredProfile,
    request: PlanRequest,
    *,
    candidate_count: int | None,
) -> Plan:
    """The plan whose artifacts serve every operating point over the candidate cuts.

    `candidate_count` None trains a head at every inner cut; a number spreads that many along
    the edge's cost. The plan's own predictions are those of its deepest split with every
    exit active; the operating points' figures come from the evaluation (`core.space`).
    """
    t = build_tables(edge, cloud, request.batch_size)
    k = t.num_cuts
    max_split = deepest_split(t, edge.device.memory_bytes)
    cuts = candidate_cuts(t, candidate_count)
    exits: list[tuple[Role, int, float]] = [
        ("edge" if cut <= max_split else "cloud", cut, t.cum_flops[cut] / max(t.cum_flops[k], 1))
        for cut in cuts
    ]
    splits = [s for s in stops(cuts, max_split, k) if s <= max_split]
    return assemble_plan(
        t,
        (edge, cloud),
        request,
        split=max_split,
        final=k,
        exits=exits,
        notes=(f"operating space: {len(cuts)} candidate exits, splits at cuts {splits}",),
    )
