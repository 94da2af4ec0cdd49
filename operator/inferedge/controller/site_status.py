"""The status of a site (`spec.distribution`): `status.pools`, `status.distribution`, the
`Distributed` condition, and the Events that announce a new decision.

A pure function of what one reconcile gathered and the status in effect. While no decision can
be made (a new plan is training, say) the one in effect stays in the status with its cause and
time, and its condition stays as it was; only the pools' ready pods follow the cluster.

`status.pools[].measuredRate` is not decided here: `controller.dispatcher_reader` writes it from
the dispatcher's counters. A reconcile writes `status.pools` whole, so each pool keeps the
measured rate of the status in effect (by name; a new pool has none until the next read).
"""

from __future__ import annotations

from dataclasses import dataclass

from inferedge.api.pipeline_status import DistributionStatus, PoolStatus
from inferedge.controller.pipeline_facts import Gathered
from inferedge.controller.site_plan import (
    CONDITION,
    INVALID,
    WAITING,
    distribution_status,
    pool_statuses,
    site_condition,
)
from inferedge.controller.views import PipelineView
from inferedge.core.conditions import Condition, Event, EventType, merge_condition
from inferedge.core.facts import Failure
from inferedge.core.lifecycle import Previous


@dataclass(frozen=True)
class SiteState:
    """What the status says of the site, and the Events to post when it is written."""

    pools: tuple[PoolStatus, ...] = ()
    distribution: DistributionStatus | None = None
    condition: Condition | None = None
    events: tuple[Event, ...] = ()


def _event(before: Condition | None, now: Condition) -> tuple[Event, ...]:
    """An Event when the condition says something new (the phase Events cover the wait)."""
    if now.reason == WAITING or (
        before is not None
        and (before.status, before.reason, before.message) == (now.status, now.reason, now.message)
    ):
        return ()
    kind: EventType = "Warning" if now.reason in ("TargetNotMet", INVALID) else "Normal"
    return (Event(kind, now.reason, now.message),)


def _decided(
    pools: tuple[PoolStatus, ...],
    distribution: DistributionStatus,
    before: DistributionStatus | None,
) -> tuple[Event, ...]:
    if before is not None and before.decided_at == distribution.decided_at:
        return ()
    shares = ", ".join(f"{p.name} {p.version} {p.share:.3g}" for p in pools)
    return (Event("Normal", "SharesDecided", f"{distribution.cause}: {shares}"),)


def site_state(
    pipeline: PipelineView, gathered: Gathered, previous: Previous, now: str
) -> SiteState:
    """The site's part of the status after this reconcile (empty without spec.distribution)."""
    spec, desired = gathered.desired.spec, gathered.desired
    before = pipeline.last_status
    old = next((c for c in previous.conditions if c.type == CONDITION), None)
    if spec is None:  # an unreadable spec says nothing about the site: keep what is there
        return SiteState(before.pools, before.distribution, old)
    if spec.distribution is None:
        return SiteState()
    generation = pipeline.meta.generation or 0
    decision = desired.site
    if decision is None:
        artifacts = gathered.facts.artifacts
        condition: Condition | None = old
        if isinstance(artifacts, Failure) and artifacts.reason == INVALID:
            condition = Condition(
                type=CONDITION,
                status="False",
                reason=INVALID,
                message=artifacts.describe()[:32768],
                observed_generation=generation,
                last_transition_time=now,
            )
        elif old is None:
            condition = site_condition(None, generation, now)
        assert condition is not None
        pools = tuple(
            p.model_copy(update={"ready_replicas": _ready(gathered, p.name)}) for p in before.pools
        )
        merged = merge_condition(previous.conditions, condition, now)
        return SiteState(pools, before.distribution, merged, _event(old, merged))
    ready = {p.name: _ready(gathered, p.name) for p in decision.pools}
    measured = {p.name: p.measured_rate for p in before.pools}
    pools = tuple(
        p.model_copy(update={"measured_rate": measured.get(p.name)})
        for p in pool_statuses(decision, ready)
    )
    distribution = distribution_status(
        spec, decision, pools, before_pools=before.pools, before=before.distribution, now=now
    )
    merged = merge_condition(previous.conditions, site_condition(decision, generation, now), now)
    events = (*_decided(pools, distribution, before.distribution), *_event(old, merged))
    return SiteState(pools, distribution, merged, events)


def _ready(gathered: Gathered, pool: str) -> int | None:
    rollout = gathered.pools.get(pool)
    return rollout.ready if rollout is not None and rollout.exists else None
