"""Reconciling one DeviceProfile: profile every model its pipelines need, record the results."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from inferedge.api.device_profile import DeviceProfileSpec, DeviceProfileStatus
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.controller import builders, naming
from inferedge.controller.children import create_once, now_rfc3339
from inferedge.controller.context import Body, Controller, ObjectKey
from inferedge.controller.kube import DEVICE_PROFILES, JOBS, PODS, KubeError, NotFound
from inferedge.controller.observe import job_snapshot
from inferedge.controller.profiling import Need, Recorded, plan_profiling
from inferedge.core.errors import describe_validation_error
from inferedge.core.lifecycle import Condition, Event, EventType, merge_condition

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def _needs(
    ctl: Controller, namespace: str, name: str, device: DeviceProfileSpec
) -> dict[str, tuple[Need, InferencePipelineSpec]]:
    """The models pipelines need profiled on this DeviceProfile, by profiling key."""
    needs: dict[str, tuple[Need, InferencePipelineSpec]] = {}
    pipelines = sorted(ctl.pipelines_in(namespace), key=lambda b: str(b["metadata"]["name"]))
    for body in pipelines:
        if body["metadata"].get("deletionTimestamp"):
            continue
        try:
            spec = InferencePipelineSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            continue  # the pipeline reports its own invalid spec
        ref = spec.edge if device.role == "edge" else spec.cloud
        if ref.profile != name:
            continue
        key = naming.profiling_key(spec, device)
        if key not in needs:
            need = Need(
                key=key,
                label=naming.profile_result_label(spec, key),
                job_name=naming.profile_job_name(name, key),
                pipeline=str(body["metadata"]["name"]),
            )
            needs[key] = (need, spec)
    return needs


async def _node_of(ctl: Controller, namespace: str, job_name: str) -> str | None:
    """The node a finished Job's pod ran on (None if its pods are gone)."""
    try:
        pods = await ctl.kube.list(PODS, namespace, {JOB_NAME_LABEL: job_name})
    except KubeError:
        return None
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            return str(node)
    return None


async def reconcile_device_profile(ctl: Controller, key: ObjectKey) -> bool:
    """One reconcile of the DeviceProfile `key`; True asks for a retry after a backoff."""
    body = ctl.device_profile(key)
    if body is None:
        ctl.profiles.forget(key)
        return False
    if body["metadata"].get("deletionTimestamp"):
        return False
    namespace, name = key
    status = dict(body.get("status") or {})
    previous = tuple(
        c for c in (Condition.from_dict(r) for r in status.get("conditions") or []) if c
    )
    generation = body["metadata"].get("generation")
    now = now_rfc3339()
    problem = naming.name_problem(name, "DeviceProfile")
    device: DeviceProfileSpec | None = None
    if problem is None:
        try:
            device = DeviceProfileSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            problem = describe_validation_error(exc, "spec")
    if device is None:
        message = f"{problem} (not retried: fix the DeviceProfile)"
        condition = Condition("Profiled", "False", "InvalidSpec", message, generation, now)
        return await _finish(
            ctl,
            body,
            status=status,
            previous=previous,
            condition=condition,
            recorded=None,
            node=None,
        )
    needs = _needs(ctl, namespace, name, device)
    jobs = {
        need.job_name: job_snapshot(ctl.job(namespace, need.job_name)) for need, _ in needs.values()
    }
    results = {
        str(r.get("model")): Recorded(
            str(r.get("model")), str(r.get("uri")), str(r.get("profiledAt"))
        )
        for r in status.get("results") or []
    }
    plan = plan_profiling(
        [need for need, _ in needs.values()],
        jobs,
        results,
        datetime.now(UTC),
        device.profiling.reprofile_after_hours,
    )
    try:
        for job_name in plan.delete:
            await ctl.kube.delete(JOBS, namespace, job_name)
        for need in plan.create:
            job = builders.build_profiling_job(
                owner=body,
                device=device,
                spec=needs[need.key][1],
                key=need.key,
                images=ctl.options.images,
            )
            await create_once(ctl.kube, job)
        recorded = list(plan.keep)
        node = status.get("node")
        for need, completed_at in plan.record:
            spec = needs[need.key][1]
            store_key = naming.profile_store_key(namespace, name, need.key)
            uri = f"{spec.storage.uri.rstrip('/')}/{store_key}"
            recorded.append(Recorded(need.label, uri, completed_at))
            node = await _node_of(ctl, namespace, need.job_name) or node
    except KubeError as exc:
        ctl.logger.warning("DeviceProfile %s/%s: %s; retrying", namespace, name, exc)
        return True
    condition = Condition("Profiled", plan.status, plan.reason, plan.message, generation, now)  # type: ignore[arg-type]
    return await _finish(
        ctl,
        body,
        status=status,
        previous=previous,
        condition=condition,
        recorded=recorded,
        node=node,
    )


async def _finish(
    ctl: Controller,
    body: Body,
    *,
    status: dict[str, Any],
    previous: tuple[Condition, ...],
    condition: Condition,
    recorded: list[Recorded] | None,
    node: str | None,
) -> bool:
    """Write the status if it changed and post an Event when the condition changed."""
    meta = body["metadata"]
    merged = merge_condition(previous, condition, condition.last_transition_time)
    results = (
        [
            {"model": r.label, "uri": r.uri, "profiledAt": r.profiled_at}
            for r in sorted(recorded, key=lambda r: r.label)
        ]
        if recorded is not None
        else status.get("results") or []
    )
    new = DeviceProfileStatus.model_validate(
        {
            "observedGeneration": meta.get("generation"),
            "node": node if recorded is not None else status.get("node"),
            "results": results,
            "conditions": [merged.to_dict()],
        }
    ).model_dump(mode="json", by_alias=True)
    if {k: v for k, v in status.items() if v is not None} == {
        k: v for k, v in new.items() if v is not None
    }:
        return False
    try:
        patched = await ctl.kube.patch(
            DEVICE_PROFILES, meta["namespace"], meta["name"], {"status": new}, subresource="status"
        )
    except NotFound:
        return False
    except KubeError as exc:
        ctl.logger.warning(
            "DeviceProfile %s/%s: writing status: %s", meta["namespace"], meta["name"], exc
        )
        return True
    ctl.remember(naming.DEVICE_PROFILES, patched)
    before = next((c for c in previous if c.type == "Profiled"), None)
    if before is None or (before.status, before.reason) != (merged.status, merged.reason):
        kind: EventType = (
            "Warning" if merged.reason in ("ProfilingFailed", "InvalidSpec") else "Normal"
        )
        await ctl.post_event(body, Event(kind, merged.reason, merged.message))
    ctl.nudge_users(meta["namespace"], meta["name"])
    return False
