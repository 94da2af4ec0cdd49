"""Reconciling one InferencePipeline: gather facts, decide (pure), act, write status, events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from inferedge.api.pipeline_status import InferencePipelineStatus, PartStatus
from inferedge.controller import jobs, naming
from inferedge.controller.cache import ObjectKey
from inferedge.controller.children import create_once, ensure, now_rfc3339
from inferedge.controller.events import EventPoster
from inferedge.controller.kube import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    JOBS,
    PIPELINES,
    SERVICES,
    KubeError,
    NotFound,
)
from inferedge.controller.observe import without_nulls
from inferedge.controller.pipeline_facts import Desired, Gathered, Sources, gather
from inferedge.controller.reconciler import Outcome
from inferedge.controller.site_builders import DISPATCHER
from inferedge.controller.site_status import SiteState, site_state
from inferedge.controller.stores import StoreFailure
from inferedge.controller.views import PipelineView
from inferedge.core.facts import RolloutFacts
from inferedge.core.lifecycle import Action, Decision, Previous, decide

# Status fields another writer owns: a merge patch that leaves them out leaves them alone.
WRITTEN_ELSEWHERE: Final = frozenset({"tuning", "adaptation"})


@dataclass(frozen=True)
class PipelineReconciler:
    """Reconciles InferencePipelines, with exactly what that needs passed in.

    `nudge_profile` asks the DeviceProfile reconciler to look at a DeviceProfile again.
    """

    sources: Sources
    events: EventPoster
    nudge_profile: Callable[[ObjectKey], None]
    logger: logging.Logger

    async def __call__(self, key: ObjectKey) -> Outcome:
        """One reconcile of the pipeline `key`."""
        pipeline = self.sources.objects.pipeline(key)
        if pipeline is None:
            return Outcome.GONE
        if pipeline.meta.deleting:
            return Outcome.DONE  # the finalizer's delete handler owns the object now
        try:
            gathered = await gather(self.sources, pipeline)
        except KubeError as exc:
            self.logger.warning("pipeline %s/%s: %s; retrying", *key, exc)
            return Outcome.RETRY
        previous = Previous.from_status(pipeline.status)
        now = now_rfc3339()
        decision = decide(previous, gathered.facts, now)
        site = site_state(pipeline, gathered, previous, now)
        try:
            again = await self._act(gathered.desired, decision)
        except (KubeError, StoreFailure) as exc:
            self.logger.warning("pipeline %s/%s: %s; retrying", *key, exc)
            return Outcome.RETRY
        try:
            written = await self._write_status(
                pipeline, _status(pipeline, decision, gathered, site)
            )
        except NotFound:
            return Outcome.DONE  # deleted meanwhile
        except KubeError as exc:
            self.logger.warning("pipeline %s/%s: writing status: %s; retrying", *key, exc)
            return Outcome.RETRY
        if written:
            for event in (*decision.events, *site.events):
                await self.events.post(pipeline.raw, event)
        if again:
            return Outcome.AGAIN
        return Outcome.RETRY if decision.retry else Outcome.DONE

    async def _act(self, desired: Desired, decision: Decision) -> bool:
        """Carry out the decision's actions; True if something changed that no watch reports."""
        namespace, name = desired.pipeline.meta.key
        spec, inputs, kube = desired.spec, desired.inputs, self.sources.kube
        again = False
        for action in decision.actions:
            if action is Action.REQUEST_PROFILES:
                cloud = desired.devices["cloud"][0]
                for device_name in (*desired.classes, cloud):  # every pool's class, the cloud
                    self.nudge_profile((namespace, device_name))
            elif action is Action.STORE_PLAN:
                assert desired.store is not None
                assert desired.plan is not None
                data = (desired.plan.model_dump_json(indent=2) + "\n").encode()
                await self.sources.stores.put(desired.store, desired.plan_key, data)
                again = True
            elif action in (Action.START_TRAINING, Action.START_EXPORT):
                assert spec is not None
                assert inputs is not None
                build = (
                    jobs.build_training_job
                    if action is Action.START_TRAINING
                    else jobs.build_export_job
                )
                job = build(
                    owner=desired.pipeline.raw,
                    spec=spec,
                    cloud=desired.devices["cloud"][1],
                    inputs=inputs,
                    images=self.sources.images,
                )
                await create_once(kube, job)
            elif action is Action.APPLY_CONFIG:
                assert desired.config_map is not None
                await ensure(kube, desired.config_map)
                if desired.site_config_map is not None:
                    await ensure(kube, desired.site_config_map)
                again = True
            elif action is Action.APPLY_EDGE:
                for deployment in desired.edges.values():
                    await ensure(kube, deployment)
                for child in (desired.dispatcher, desired.dispatcher_service):
                    if child is not None:
                        await ensure(kube, child)
            elif action is Action.APPLY_CLOUD:
                assert desired.cloud is not None
                await ensure(kube, desired.cloud)
                if desired.service is not None:
                    await ensure(kube, desired.service)
            elif action is Action.PRUNE_JOBS and inputs is not None:
                await self._prune_jobs(namespace, name, inputs.training_key)
                await self._prune_serving(desired)
        return again

    async def _prune_serving(self, desired: Desired) -> None:
        """Once the current children serve: delete the edge Deployments of pools no longer in
        the spec, and the site's children when spec.distribution is gone."""
        namespace, pipeline = desired.pipeline.meta.key
        spec, names, kube = desired.spec, naming.PipelineNames(pipeline), self.sources.kube
        if spec is None or not desired.edges:
            return
        keep = {names.edge_of(spec.edge, pool) for pool in desired.edges}
        for deployment in list(self.sources.objects.deployments_of(namespace, pipeline)):
            component = deployment.meta.labels.get(naming.COMPONENT_LABEL)
            if component == "edge" and deployment.meta.name not in keep:
                await kube.delete(DEPLOYMENTS, namespace, deployment.meta.name)
            elif component == DISPATCHER and spec.distribution is None:
                # The Deployment last: while it is indexed, the others may still be there.
                await kube.delete(SERVICES, namespace, names.dispatcher)
                await kube.delete(CONFIG_MAPS, namespace, names.site)
                await kube.delete(DEPLOYMENTS, namespace, deployment.meta.name)

    async def _prune_jobs(self, namespace: str, pipeline: str, current_key: str) -> None:
        """Delete training and export Jobs of superseded runs once the current one serves."""
        for job in list(self.sources.objects.jobs_of(namespace, pipeline)):
            if job.meta.labels.get(naming.KEY_LABEL) not in (None, current_key):
                await self.sources.kube.delete(JOBS, namespace, job.meta.name)

    async def _write_status(self, pipeline: PipelineView, status: dict[str, Any]) -> bool:
        """Merge-patch the status subresource if it changed (nulls remove fields); the fields
        that others write (the edge readers') are neither compared nor written."""
        ours = {k: v for k, v in pipeline.status.items() if k not in WRITTEN_ELSEWHERE}
        if without_nulls(ours) == without_nulls(status):
            return False
        namespace, name = pipeline.meta.key
        patched = await self.sources.kube.patch(
            PIPELINES, namespace, name, {"status": status}, subresource="status"
        )
        self.sources.objects.remember(naming.PIPELINES, patched)
        return True


def _part(rollout: RolloutFacts | None) -> PartStatus | None:
    if rollout is None or not rollout.exists:
        return None
    return PartStatus(
        deployment=rollout.name, replicas=rollout.desired, ready_replicas=rollout.ready
    )


def _status(
    pipeline: PipelineView, decision: Decision, gathered: Gathered, site: SiteState
) -> dict[str, Any]:
    """The status to write, validated against the API model; unknown parts keep their value."""
    desired, facts = gathered.desired, gathered.facts
    before = pipeline.last_status
    known = desired.artifacts is not None
    conditions = decision.conditions
    if site.condition is not None:
        conditions = (*conditions, site.condition)
    status = InferencePipelineStatus(
        phase=decision.phase,
        observed_generation=pipeline.meta.generation,
        conditions=conditions,
        plan=desired.summary if desired.summary is not None else before.plan,
        threshold=desired.threshold if known else before.threshold,
        artifacts=desired.artifacts if known else before.artifacts,
        offload_ratio=desired.offload_ratio if known else before.offload_ratio,
        edge=_part(gathered.edge),
        pools=site.pools,
        distribution=site.distribution,
        cloud=_part(facts.cloud),
        message=decision.message,
    )
    dumped: dict[str, Any] = status.model_dump(
        mode="json", by_alias=True, exclude=set(WRITTEN_ELSEWHERE)
    )
    return dumped
