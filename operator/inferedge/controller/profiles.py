"""Reconciling one DeviceProfile: profile every model its pipelines need, record the results."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from inferedge.api import keys
from inferedge.api.device_profile import DeviceProfileSpec, DeviceProfileStatus
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.controller import naming, pods
from inferedge.controller.cache import ObjectCache, ObjectKey
from inferedge.controller.children import create_once, now_rfc3339
from inferedge.controller.events import EventPoster
from inferedge.controller.jobs import build_profiling_job
from inferedge.controller.kube import DEVICE_PROFILES, JOBS, PODS, Kube, KubeError, NotFound
from inferedge.controller.observe import job_snapshot
from inferedge.controller.profiling import Need, Recorded, plan_profiling
from inferedge.controller.reconciler import Outcome
from inferedge.controller.views import DeviceProfileView
from inferedge.core.conditions import (
    Condition,
    ConditionStatus,
    Event,
    EventType,
    merge_condition,
)
from inferedge.core.errors import describe_validation_error

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


@dataclass(frozen=True)
class DeviceProfileReconciler:
    """Reconciles DeviceProfiles, with exactly what that needs passed in.

    `nudge_pipeline` asks the pipeline reconciler to look at a pipeline again (one that uses a
    DeviceProfile whose results changed).
    """

    objects: ObjectCache
    kube: Kube
    images: pods.Images
    events: EventPoster
    nudge_pipeline: Callable[[ObjectKey], None]
    logger: logging.Logger

    async def __call__(self, key: ObjectKey) -> Outcome:
        """One reconcile of the DeviceProfile `key`."""
        view = self.objects.device_profile(key)
        if view is None:
            return Outcome.GONE
        if view.meta.deleting:
            return Outcome.DONE
        namespace, name = key
        now = now_rfc3339()
        problem = naming.name_problem(name, "DeviceProfile")
        device: DeviceProfileSpec | None = None
        if problem is None:
            try:
                device = DeviceProfileSpec.model_validate(view.spec)
            except ValidationError as exc:
                problem = describe_validation_error(exc, "spec")
        if device is None:
            condition = _condition(
                view, "False", "InvalidSpec", f"{problem} (not retried: fix the DeviceProfile)", now
            )
            return await self._finish(view, condition=condition, recorded=None, node=None)
        needs = self._needs(namespace, name, device)
        jobs = {
            need.job_name: job_snapshot(self.objects.job(namespace, need.job_name))
            for need, _ in needs.values()
        }
        plan = plan_profiling(
            [need for need, _ in needs.values()],
            jobs,
            {r.label: r for r in view.results},
            datetime.now(UTC),
            device.profiling.reprofile_after_hours,
        )
        try:
            for job_name in plan.delete:
                await self.kube.delete(JOBS, namespace, job_name)
            for need in plan.create:
                job = build_profiling_job(
                    owner=view.raw,
                    device=device,
                    spec=needs[need.key][1],
                    key=need.key,
                    images=self.images,
                )
                await create_once(self.kube, job)
            recorded = list(plan.keep)
            node = view.node
            for need, completed_at in plan.record:
                spec = needs[need.key][1]
                store_key = keys.profile_store_key(namespace, name, need.key)
                uri = f"{spec.storage.uri.rstrip('/')}/{store_key}"
                recorded.append(Recorded(need.label, uri, completed_at))
                node = await self._node_of(namespace, need.job_name) or node
        except KubeError as exc:
            self.logger.warning("DeviceProfile %s/%s: %s; retrying", namespace, name, exc)
            return Outcome.RETRY
        condition = _condition(view, plan.status, plan.reason, plan.message, now)
        return await self._finish(view, condition=condition, recorded=recorded, node=node)

    def _needs(
        self, namespace: str, name: str, device: DeviceProfileSpec
    ) -> dict[str, tuple[Need, InferencePipelineSpec]]:
        """The models pipelines need profiled on this DeviceProfile, by profiling key."""
        needs: dict[str, tuple[Need, InferencePipelineSpec]] = {}
        pipelines = sorted(self.objects.pipelines_in(namespace), key=lambda p: p.meta.name)
        for pipeline in pipelines:
            if pipeline.meta.deleting:
                continue
            try:
                spec = InferencePipelineSpec.model_validate(pipeline.spec)
            except ValidationError:
                continue  # the pipeline reports its own invalid spec
            # Every edge pool's class is profiled (the site's table has a row on each); the
            # plan is made on the reference pool's.
            used = (
                {pool.profile for pool in spec.edge.resolved_pools()}
                if device.role == "edge"
                else {spec.cloud.profile}
            )
            if name not in used:
                continue
            key = keys.profiling_key(spec, device)
            if key not in needs:
                need = Need(
                    key=key,
                    label=naming.profile_result_label(spec, key),
                    job_name=naming.profile_job_name(name, key),
                    pipeline=pipeline.meta.name,
                )
                needs[key] = (need, spec)
        return needs

    async def _node_of(self, namespace: str, job_name: str) -> str | None:
        """The node a finished Job's pod ran on (None if its pods are gone)."""
        try:
            pods = await self.kube.list(PODS, namespace, {JOB_NAME_LABEL: job_name})
        except KubeError:
            return None
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                return str(node)
        return None

    async def _finish(
        self,
        view: DeviceProfileView,
        *,
        condition: Condition,
        recorded: list[Recorded] | None,
        node: str | None,
    ) -> Outcome:
        """Write the status if it changed and post an Event when the condition changed."""
        namespace, name = view.meta.key
        merged = merge_condition(view.conditions, condition, condition.last_transition_time)
        results: list[Any] = (
            [
                {"model": r.label, "uri": r.uri, "profiledAt": r.profiled_at}
                for r in sorted(recorded, key=lambda r: r.label)
            ]
            if recorded is not None
            else list(view.status.get("results") or [])
        )
        new = DeviceProfileStatus.model_validate(
            {
                "observedGeneration": view.meta.generation,
                "node": node if recorded is not None else view.node,
                "results": results,
                "conditions": [merged],
            }
        ).model_dump(mode="json", by_alias=True)
        if {k: v for k, v in view.status.items() if v is not None} == {
            k: v for k, v in new.items() if v is not None
        }:
            return Outcome.DONE
        try:
            patched = await self.kube.patch(
                DEVICE_PROFILES, namespace, name, {"status": new}, subresource="status"
            )
        except NotFound:
            return Outcome.DONE
        except KubeError as exc:
            self.logger.warning("DeviceProfile %s/%s: writing status: %s", namespace, name, exc)
            return Outcome.RETRY
        self.objects.remember(naming.DEVICE_PROFILES, patched)
        before = next((c for c in view.conditions if c.type == "Profiled"), None)
        if before is None or (before.status, before.reason) != (merged.status, merged.reason):
            kind: EventType = (
                "Warning" if merged.reason in ("ProfilingFailed", "InvalidSpec") else "Normal"
            )
            await self.events.post(view.raw, Event(kind, merged.reason, merged.message))
        for pipeline in self.objects.users_of(namespace, name):
            self.nudge_pipeline((namespace, pipeline))
        return Outcome.DONE


def _condition(
    view: DeviceProfileView, status: ConditionStatus, reason: str, message: str, now: str
) -> Condition:
    """The Profiled condition as this reconcile sees it."""
    return Condition(
        type="Profiled",
        status=status,
        reason=reason,
        message=message,
        observed_generation=view.meta.generation,
        last_transition_time=now,
    )
