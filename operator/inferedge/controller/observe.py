"""Reading child objects into facts: pure functions over the typed views of API bodies."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from inferedge.controller import naming
from inferedge.controller.profiling import JobSnapshot
from inferedge.controller.views import DeploymentView, JobView
from inferedge.core.facts import JobFacts, RolloutFacts


def plain(value: Any) -> Any:
    """A deep copy of a kopf body (mapping views included) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return copy.copy(value)


def without_nulls(value: Any) -> Any:
    """A body with its null fields left out, at any depth: how the API server returns what a
    merge patch wrote, so two bodies compare as they will be stored."""
    if isinstance(value, Mapping):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [without_nulls(v) for v in value]
    return value


def job_snapshot(job: JobView | None) -> JobSnapshot:
    """A Job's state from its conditions (Complete / Failed), else from its pod counters."""
    if job is None:
        return JobSnapshot("Absent")
    for condition in job.conditions:
        if condition.status != "True":
            continue
        if condition.type == "Complete":
            done = (
                job.completion_time or condition.last_transition_time or job.meta.creation_timestamp
            )
            return JobSnapshot("Succeeded", completed_at=done)
        if condition.type == "Failed":
            return JobSnapshot("Failed", message=condition.message or condition.reason)
    return JobSnapshot("Active")


def job_facts(name: str, job: JobView | None) -> JobFacts:
    """The lifecycle's view of one Job."""
    snapshot = job_snapshot(job)
    return JobFacts(name=name, state=snapshot.state, message=snapshot.message)


def rollout_facts(
    name: str, deployment: DeploymentView | None, desired_hash: str | None
) -> RolloutFacts:
    """A Deployment's rollout and live pod readiness; `current` compares template hashes."""
    if deployment is None:
        return RolloutFacts(name=name, exists=False, current=False if desired_hash else None)
    current = (
        None
        if desired_hash is None
        else deployment.meta.annotations.get(naming.TEMPLATE_HASH) == desired_hash
    )
    return RolloutFacts(
        name=name,
        exists=True,
        current=current,
        observed=deployment.observed_generation >= (deployment.meta.generation or 0),
        desired=1 if deployment.replicas is None else deployment.replicas,
        updated=deployment.updated_replicas,
        ready=deployment.ready_replicas,
    )


NAME_MAX = 253
"""The longest name a part's status shows (`PartStatus.deployment`)."""


def combined_rollout(parts: list[RolloutFacts]) -> RolloutFacts:
    """Several Deployments that serve one part (each edge pool's, a site's dispatcher) as one:
    current and rolled out when each is, pods ready when each has its pods ready.

    One Deployment stands for itself. Counts are summed with each Deployment's ready and
    updated pods capped at its own wanted replicas, so a surplus in one (a rolling update's
    surge) never hides a shortfall in another. Names are joined (cut to 253 characters).
    """
    if len(parts) == 1:
        return parts[0]
    name = ", ".join(p.name for p in parts)
    if len(name) > NAME_MAX:
        name = name[: NAME_MAX - 3] + "..."
    currents = [p.current for p in parts]
    current = None if any(c is None for c in currents) else all(currents)
    existing = [p for p in parts if p.exists]
    if not existing:
        return RolloutFacts(name=name, exists=False, current=current)
    return RolloutFacts(
        name=name,
        exists=True,
        current=current,
        observed=all(p.observed for p in existing),
        desired=sum(p.desired for p in existing),
        updated=sum(min(p.updated, p.desired) for p in existing),
        ready=sum(min(p.ready, p.desired) for p in existing),
    )
