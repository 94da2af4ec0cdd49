"""A site's decision in the operator (`spec.distribution`): pure functions, no I/O.

From what the operator already has (every pool class's profile of the model, and the exported
set's plan and calibration) comes the exploration table of the versions the operator can serve:
the model itself with its early exits, and the model truncated at its k-th edge exit
(`spec.model.versions` entries with `exit`), all served from the one exported set
(`core.site_table`). Versions naming other models need their own training and export, which
the operator does not do yet: they are left out, and named in the `Distributed` condition.
The policy (`core.distribution.distribute`) then decides each pool's version and share for the
target; `site_config` is the dispatcher's file for that decision, and the status functions say
what is in effect and why it was last decided (`cause`, kept until the decision changes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.api.pipeline_status import DistributionStatus, PoolStatus
from inferedge.api.site import SiteConfig, SitePool
from inferedge.core.conditions import Condition, ConditionStatus
from inferedge.core.distribution import Distribution, DistributionError, distribute
from inferedge.core.exploration import ExplorationRow
from inferedge.core.manifest import Calibration
from inferedge.core.plan import Plan
from inferedge.core.profile import MeasuredProfile
from inferedge.core.site_choice import policy_pools, pool_versions
from inferedge.core.site_table import ServedVersion, served_version, site_rows

CONDITION: Final = "Distributed"
WAITING: Final = "WaitingForArtifacts"
INVALID: Final = "DistributionInvalid"
"""The failure reason of a site the policy cannot decide (it waits for a change)."""
NOT_BUILT: Final = (
    "another model needs its own training and export, which the operator does not do yet"
)
"""Why a version naming another model is left out of the table."""


@dataclass(frozen=True)
class LeftOut:
    """A version of `spec.model.versions` the table does without, and why."""

    label: str
    why: str


@dataclass(frozen=True)
class PoolDecision:
    """One pool as decided: the version it serves (and the edge exit it answers at when that
    version is a truncated one), its table row, and its share of the stream."""

    name: str
    profile: str
    replicas: int
    version: str
    answer_at: int | None
    throughput: float
    accuracy: float
    share: float
    rate: float


@dataclass(frozen=True)
class SiteDecision:
    """Each pool's part, the policy's answer, the table it was decided from, and the versions
    left out of it."""

    pools: tuple[PoolDecision, ...]
    distribution: Distribution
    table: tuple[ExplorationRow, ...]
    left_out: tuple[LeftOut, ...]

    def pool(self, name: str) -> PoolDecision:
        """The decision for the pool `name`."""
        return next(p for p in self.pools if p.name == name)

    def left_out_note(self) -> str:
        """The versions left out, in one clause ('' when none is)."""
        if not self.left_out:
            return ""
        parts = [f"{v.label} ({v.why})" for v in self.left_out]
        return f"versions left out: {'; '.join(parts)}"


def table_versions(
    spec: InferencePipelineSpec, plan: Plan, calibration: Calibration
) -> tuple[tuple[ServedVersion, ...], tuple[LeftOut, ...]]:
    """The versions the exported set serves (the model itself first, then its truncations),
    and those left out. The model itself must be servable: its error is raised."""
    itself, *others = spec.model.all_versions()
    served = [served_version(itself.label, plan, calibration)]
    left_out = []
    for version in others:
        if version.exit is None:
            left_out.append(LeftOut(version.label, NOT_BUILT))
            continue
        try:
            served.append(served_version(version.label, plan, calibration, version.exit))
        except DistributionError as exc:
            left_out.append(LeftOut(version.label, str(exc)))
    return tuple(served), tuple(left_out)


def decide_site(
    spec: InferencePipelineSpec,
    classes: Mapping[str, MeasuredProfile],
    plan: Plan,
    calibration: Calibration,
) -> SiteDecision:
    """Each pool's version and share for `spec.distribution`'s target.

    `classes` is each pool's device class's profile of the model, by DeviceProfile name;
    `plan` and `calibration` are the exported set's (its manifest's). The pools' replicas are
    the spec's. Raises DistributionError (one line) for a table the policy cannot work with.
    """
    target = spec.distribution
    if target is None:
        raise DistributionError("spec.distribution: a site needs a target rate")
    pools = spec.edge.resolved_pools()
    missing = sorted({p.profile for p in pools} - set(classes))
    if missing:
        raise DistributionError(f"no profile of the model on {', '.join(missing)}")
    served, left_out = table_versions(spec, plan, calibration)
    used = {p.profile: classes[p.profile] for p in pools}
    table = tuple(row for version in served for row in site_rows(used, version))
    policy = policy_pools(pools, table)
    distribution = distribute(
        policy,
        target.target_rate,
        min_accuracy=target.min_accuracy,
        max_utilization=target.max_utilization,
    )
    versions = pool_versions(policy, distribution, target.min_accuracy)
    answer_at = {v.label: v.answer_at for v in served}
    parts = {a.pool: a for a in distribution.assignments}
    decided = []
    for pool, figures in zip(pools, policy, strict=True):
        version = versions[pool.name]
        part = parts.get(pool.name)
        decided.append(
            PoolDecision(
                name=pool.name,
                profile=pool.profile,
                replicas=pool.replicas,
                version=version,
                answer_at=answer_at[version],
                throughput=figures.versions[version].throughput,
                accuracy=figures.versions[version].accuracy,
                share=part.share if part is not None else 0.0,
                rate=part.rate if part is not None else 0.0,
            )
        )
    return SiteDecision(tuple(decided), distribution, table, left_out)


def site_config(
    namespace: str, pipeline: str, spec: InferencePipelineSpec, decision: SiteDecision
) -> SiteConfig:
    """The dispatcher's site file for `decision`: each pool's version and its table row."""
    target = spec.distribution
    if target is None:
        raise DistributionError("spec.distribution: a site needs a target rate")
    return SiteConfig(
        namespace=namespace,
        pipeline=pipeline,
        input_shape=spec.model.input_shape,
        target_rate=target.target_rate,
        min_accuracy=target.min_accuracy,
        max_utilization=target.max_utilization,
        drift_bound=target.drift_bound,
        pools=tuple(
            SitePool(
                name=p.name,
                version=p.version,
                replicas=p.replicas,
                throughput=p.throughput,
                accuracy=p.accuracy,
            )
            for p in decision.pools
        ),
    )


def site_json(config: SiteConfig) -> str:
    """The site file's text, as `inferedge dispatch --site` reads it."""
    return config.model_dump_json(by_alias=True)


def pool_statuses(
    decision: SiteDecision, ready: Mapping[str, int | None]
) -> tuple[PoolStatus, ...]:
    """`status.pools`: each pool's decision, with its ready pods where known (by pool name)."""
    return tuple(
        PoolStatus(
            name=p.name,
            profile=p.profile,
            version=p.version,
            share=min(max(p.share, 0.0), 1.0),
            assigned_rate=p.rate,
            replicas=p.replicas,
            ready_replicas=ready.get(p.name),
        )
        for p in decision.pools
    )


def _outcome(pools: Sequence[PoolStatus], distribution: DistributionStatus) -> tuple[object, ...]:
    """What a decision decided: compared to tell a new decision from the one in effect (the
    live ready pods, the cause and the time are not part of it)."""
    parts = tuple(
        (p.name, p.profile, p.version, p.share, p.assigned_rate, p.replicas) for p in pools
    )
    d = distribution
    return (parts, d.target_rate, d.planned_rate, d.accuracy, d.met, d.reason)


def decision_cause(
    before_pools: Sequence[PoolStatus],
    before: DistributionStatus | None,
    pools: Sequence[PoolStatus],
    now: DistributionStatus,
) -> str | None:
    """Why the shares were decided anew, from the status in effect and the new decision; None
    when the decision is the one in effect."""
    if before is None:
        return "start"
    if before.target_rate != now.target_rate:
        return f"target changed: {before.target_rate:g} -> {now.target_rate:g} requests/s"
    old = {p.name: p for p in before_pools}
    new = {p.name: p for p in pools}
    if set(old) != set(new):
        added = [f"+{n}" for n in new if n not in old]
        removed = [f"-{n}" for n in old if n not in new]
        return f"pools changed: {' '.join([*added, *removed])}"
    scaled = [
        f"pool {n}: {old[n].replicas} -> {p.replicas} replicas"
        for n, p in new.items()
        if old[n].replicas != p.replicas
    ]
    if scaled:
        return "; ".join(scaled)
    if _outcome(before_pools, before) != _outcome(pools, now):
        return "the exploration table or spec.distribution changed"
    return None


def distribution_status(
    spec: InferencePipelineSpec,
    decision: SiteDecision,
    pools: Sequence[PoolStatus],
    *,
    before_pools: Sequence[PoolStatus],
    before: DistributionStatus | None,
    now: str,
) -> DistributionStatus:
    """`status.distribution` for `decision`; `cause` and `decidedAt` move only when the
    decision differs from the one in `before` (the status in effect)."""
    target = spec.distribution
    if target is None:
        raise DistributionError("spec.distribution: a site needs a target rate")
    d = decision.distribution
    status = DistributionStatus(
        target_rate=target.target_rate,
        planned_rate=d.rate,
        accuracy=min(max(d.accuracy, 0.0), 1.0) if d.assignments else None,
        met=d.met,
        reason=None if d.met else d.reason[:1024],
        cause="start",
    )
    cause = decision_cause(before_pools, before, pools, status)
    if cause is None and before is not None:
        return status.model_copy(update={"cause": before.cause, "decided_at": before.decided_at})
    return status.model_copy(update={"cause": (cause or "start")[:1024], "decided_at": now})


def site_condition(
    decision: SiteDecision | None, generation: int, now: str, waiting: str = ""
) -> Condition:
    """The `Distributed` condition: True when the pools' decided rate covers the target; its
    message names the versions left out of the table. `waiting` says why there is no decision
    yet (the default: the exported set is not there)."""
    status: ConditionStatus
    if decision is None:
        status, reason = "False", WAITING
        message = waiting or "the distribution is decided from the exported set's calibration"
    else:
        d = decision.distribution
        accuracy = f" at accuracy {d.accuracy:.3f}" if d.assignments else ""
        if d.met:
            status, reason = "True", "TargetMet"
            message = f"{d.rate:.4g} requests/s planned{accuracy}"
        else:
            status, reason = "False", "TargetNotMet"
            message = f"{d.reason}; {d.rate:.4g} requests/s planned{accuracy}"
        note = decision.left_out_note()
        if note:
            message = f"{message}; {note}"
    return Condition(
        type=CONDITION,
        status=status,
        reason=reason,
        message=message[:32768],
        observed_generation=generation,
        last_transition_time=now,
    )
