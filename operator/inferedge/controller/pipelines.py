"""Reconciling one InferencePipeline: gather facts, decide (pure), act, write status, events."""

from __future__ import annotations

from typing import Any

from inferedge.api.pipeline import InferencePipelineStatus
from inferedge.controller import builders, naming
from inferedge.controller.children import create_once, ensure, now_rfc3339
from inferedge.controller.context import Body, Controller, ObjectKey
from inferedge.controller.kube import JOBS, PIPELINES, KubeError, NotFound
from inferedge.controller.pipeline_facts import Desired, Gathered, gather
from inferedge.controller.stores import StoreFailure
from inferedge.core.lifecycle import Action, Decision, Previous, RolloutFacts, decide


async def reconcile_pipeline(ctl: Controller, key: ObjectKey) -> bool:
    """One reconcile of the pipeline `key`; True asks for a retry after a backoff."""
    body = ctl.pipeline(key)
    if body is None:
        ctl.pipelines.forget(key)
        return False
    if body["metadata"].get("deletionTimestamp"):
        return False  # the finalizer's delete handler owns the object now
    try:
        gathered = await gather(ctl, body)
    except KubeError as exc:
        ctl.logger.warning("pipeline %s/%s: %s; retrying", *key, exc)
        return True
    previous = Previous.from_status(body.get("status"))
    decision = decide(previous, gathered.facts, now_rfc3339())
    try:
        again = await _act(ctl, gathered.desired, decision)
    except (KubeError, StoreFailure) as exc:
        ctl.logger.warning("pipeline %s/%s: %s; retrying", *key, exc)
        return True
    try:
        status = _status(body, decision, gathered)
        written = await _write_status(ctl, body, status)
    except NotFound:
        return False  # deleted meanwhile
    except KubeError as exc:
        ctl.logger.warning("pipeline %s/%s: writing status: %s; retrying", *key, exc)
        return True
    if written:
        for event in decision.events:
            await ctl.post_event(body, event)
    if again:
        ctl.pipelines.nudge(key)  # the action changed something no watch reports (store, config)
    return decision.retry


async def _act(ctl: Controller, desired: Desired, decision: Decision) -> bool:
    """Carry out the decision's actions; True if the pipeline should be looked at again now."""
    meta = desired.body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    spec, inputs, kube = desired.spec, desired.inputs, ctl.kube
    again = False
    for action in decision.actions:
        if action is Action.REQUEST_PROFILES:
            for device_name, _ in desired.devices.values():
                ctl.profiles.nudge((namespace, device_name))
        elif action is Action.STORE_PLAN:
            assert desired.store is not None
            assert desired.plan is not None
            data = (desired.plan.model_dump_json(indent=2) + "\n").encode()
            await ctl.stores.put(desired.store, desired.plan_key, data)
            again = True
        elif action in (Action.START_TRAINING, Action.START_EXPORT):
            assert spec is not None
            assert inputs is not None
            build = (
                builders.build_training_job
                if action is Action.START_TRAINING
                else builders.build_export_job
            )
            job = build(
                owner=desired.body,
                spec=spec,
                cloud=desired.devices["cloud"][1],
                inputs=inputs,
                images=ctl.options.images,
            )
            await create_once(kube, job)
        elif action is Action.APPLY_CONFIG:
            assert desired.config_map is not None
            await ensure(kube, desired.config_map)
            again = True
        elif action in (Action.APPLY_EDGE, Action.APPLY_CLOUD):
            role = "edge" if action is Action.APPLY_EDGE else "cloud"
            await ensure(kube, desired.deployments[role])
            if role == "cloud" and desired.service is not None:
                await ensure(kube, desired.service)
        elif action is Action.PRUNE_JOBS and inputs is not None:
            await _prune_jobs(ctl, namespace, name, inputs.training_key)
    return again


async def _prune_jobs(ctl: Controller, namespace: str, pipeline: str, current_key: str) -> None:
    """Delete training and export Jobs of superseded runs once the current one serves."""
    for job in list(ctl.jobs_of(namespace, pipeline)):
        labels = job.get("metadata", {}).get("labels") or {}
        if labels.get(naming.KEY_LABEL) not in (None, current_key):
            await ctl.kube.delete(JOBS, namespace, job["metadata"]["name"])


def _part(rollout: RolloutFacts | None) -> dict[str, Any] | None:
    if rollout is None or not rollout.exists:
        return None
    return {"deployment": rollout.name, "replicas": rollout.desired, "readyReplicas": rollout.ready}


def _status(body: Body, decision: Decision, gathered: Gathered) -> dict[str, Any]:
    """The status to write, validated against the API model; unknown parts keep their value."""
    desired, facts = gathered.desired, gathered.facts
    previous = body.get("status") or {}
    known = desired.artifacts is not None
    status = InferencePipelineStatus.model_validate(
        {
            "phase": decision.phase,
            "observedGeneration": body["metadata"].get("generation"),
            "conditions": [c.to_dict() for c in decision.conditions],
            "plan": desired.summary.model_dump(mode="json", by_alias=True)
            if desired.summary is not None
            else previous.get("plan"),
            "threshold": desired.threshold if known else previous.get("threshold"),
            "artifacts": desired.artifacts.model_dump(mode="json", by_alias=True)
            if desired.artifacts is not None
            else previous.get("artifacts"),
            "offloadRatio": desired.offload_ratio if known else previous.get("offloadRatio"),
            "edge": _part(facts.edge),
            "cloud": _part(facts.cloud),
            "message": decision.message,
        }
    )
    dumped: dict[str, Any] = status.model_dump(mode="json", by_alias=True)
    return dumped


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


async def _write_status(ctl: Controller, body: Body, status: dict[str, Any]) -> bool:
    """Merge-patch the status subresource if it changed (nulls remove fields)."""
    if _without_nulls(body.get("status") or {}) == _without_nulls(status):
        return False
    meta = body["metadata"]
    patched = await ctl.kube.patch(
        PIPELINES, meta["namespace"], meta["name"], {"status": status}, subresource="status"
    )
    ctl.remember(naming.PIPELINES, patched)
    return True
