"""Reading child objects into facts: pure functions over the dicts the API returns."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from inferedge.controller import naming
from inferedge.controller.profiling import JobSnapshot
from inferedge.core.lifecycle import JobFacts, RolloutFacts


def plain(value: Any) -> Any:
    """A deep copy of a kopf body (mapping views included) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return copy.copy(value)


def job_snapshot(job: Mapping[str, Any] | None) -> JobSnapshot:
    """A Job's state from its conditions (Complete / Failed), else from its pod counters."""
    if job is None:
        return JobSnapshot("Absent")
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            done = (
                status.get("completionTime")
                or condition.get("lastTransitionTime")
                or job.get("metadata", {}).get("creationTimestamp")
            )
            return JobSnapshot("Succeeded", completed_at=str(done) if done else None)
        if condition.get("type") == "Failed":
            detail = condition.get("message") or condition.get("reason") or ""
            return JobSnapshot("Failed", message=str(detail))
    return JobSnapshot("Active")


def job_facts(name: str, job: Mapping[str, Any] | None) -> JobFacts:
    """The lifecycle's view of one Job."""
    snapshot = job_snapshot(job)
    return JobFacts(name=name, state=snapshot.state, message=snapshot.message)


def rollout_facts(
    name: str, deployment: Mapping[str, Any] | None, desired_hash: str | None
) -> RolloutFacts:
    """A Deployment's rollout and live pod readiness; `current` compares template hashes."""
    if deployment is None:
        return RolloutFacts(name=name, exists=False, current=False if desired_hash else None)
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    annotations = meta.get("annotations") or {}
    current = (
        None if desired_hash is None else annotations.get(naming.TEMPLATE_HASH) == desired_hash
    )
    generation = int(meta.get("generation") or 0)
    replicas = spec.get("replicas")
    return RolloutFacts(
        name=name,
        exists=True,
        current=current,
        observed=int(status.get("observedGeneration") or 0) >= generation,
        desired=1 if replicas is None else int(replicas),
        updated=int(status.get("updatedReplicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
    )


def resource_version(body: Mapping[str, Any] | None) -> int:
    """metadata.resourceVersion as a number (-1 if absent or not numeric).

    resourceVersion is formally opaque; every etcd-backed server issues increasing integers,
    which is all this is used for: telling the newer of two copies of one object.
    """
    if not body:
        return -1
    value = (body.get("metadata") or {}).get("resourceVersion")
    try:
        return int(str(value))
    except ValueError:
        return -1
