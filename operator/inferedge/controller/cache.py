"""The objects the operator sees: kopf's indices, plus the status writes not yet watched back.

kopf keeps an in-memory index of every InferencePipeline and DeviceProfile and of the Jobs and
Deployments the operator made, and runs handlers only once those indices are filled after a
(re)start. The reconcilers read them instead of calling the API, so a restart sees the children
it made before and never makes them twice.

A status write returns the object as the server stored it, and the watch delivers that copy a
little later. Until it does, the written copy stands in for the indexed one, so a reconcile that
runs meanwhile does not see its own status as not yet written (and post its Events twice).
resourceVersion is opaque and says nothing about order, so the versions are not compared at
all: only this operator writes the status, so the index has caught up exactly when it holds the
written status (the written copy itself, or a later one that carries it). A copy from between
(another change that raced the write) is older than the written one and does not replace it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from inferedge.controller import naming
from inferedge.controller.views import (
    Body,
    DeploymentView,
    DeviceProfileView,
    JobView,
    Meta,
    PipelineView,
)

ObjectKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Indices:
    """kopf's live indices, each `{(namespace, name): store of one body}`."""

    pipelines: Mapping[Any, Any]
    device_profiles: Mapping[Any, Any]
    jobs: Mapping[Any, Any]
    deployments: Mapping[Any, Any]


def _one(index: Mapping[Any, Any], key: ObjectKey) -> Body | None:
    store = index.get(key)
    if store is None:
        return None
    return next(iter(store), None)


class ObjectCache:
    """The newest copy of every object this process has seen, as typed views."""

    def __init__(self, indices: Indices) -> None:
        self._indices = indices
        self._written: dict[tuple[str, ObjectKey], Body] = {}

    def remember(self, kind: str, body: Body) -> None:
        """Keep the body a status write returned until the watch delivers a copy holding it."""
        self._written[(kind, Meta.from_body(body).key)] = body

    def _index(self, kind: str) -> Mapping[Any, Any]:
        return (
            self._indices.pipelines if kind == naming.PIPELINES else self._indices.device_profiles
        )

    def _newest(self, kind: str, key: ObjectKey) -> Body | None:
        indexed = _one(self._index(kind), key)
        written = self._written.get((kind, key))
        if indexed is None or written is None:
            self._written.pop((kind, key), None)
            return indexed
        if (indexed.get("status") or {}) != (written.get("status") or {}):
            return written  # the watch has not delivered the write yet
        del self._written[(kind, key)]
        return indexed

    def pipeline(self, key: ObjectKey) -> PipelineView | None:
        """The newest copy of a pipeline this process has seen."""
        body = self._newest(naming.PIPELINES, key)
        return PipelineView.from_body(body) if body is not None else None

    def device_profile(self, key: ObjectKey) -> DeviceProfileView | None:
        """The newest copy of a DeviceProfile this process has seen."""
        body = self._newest(naming.DEVICE_PROFILES, key)
        return DeviceProfileView.from_body(body) if body is not None else None

    def job(self, namespace: str, name: str) -> JobView | None:
        """A Job the operator made."""
        body = _one(self._indices.jobs, (namespace, name))
        return JobView.from_body(body) if body is not None else None

    def deployment(self, namespace: str, name: str) -> DeploymentView | None:
        """A Deployment the operator made."""
        body = _one(self._indices.deployments, (namespace, name))
        return DeploymentView.from_body(body) if body is not None else None

    def pipeline_keys(self) -> list[ObjectKey]:
        """Every pipeline's key."""
        return list(self._indices.pipelines)

    def device_profile_keys(self) -> list[ObjectKey]:
        """Every DeviceProfile's key."""
        return list(self._indices.device_profiles)

    def pipelines_in(self, namespace: str) -> Iterator[PipelineView]:
        """Every pipeline in `namespace` (in no particular order)."""
        for (ns, _), store in list(self._indices.pipelines.items()):
            if ns == namespace:
                for body in store:
                    yield PipelineView.from_body(body)

    def jobs_of(self, namespace: str, pipeline: str) -> Iterator[JobView]:
        """The Jobs a pipeline owns (training and export)."""
        for (ns, _), store in list(self._indices.jobs.items()):
            for body in store:
                job = JobView.from_body(body)
                if ns == namespace and job.meta.labels.get(naming.PIPELINE_LABEL) == pipeline:
                    yield job

    def deployments_of(self, namespace: str, pipeline: str) -> Iterator[DeploymentView]:
        """The Deployments a pipeline owns (edge pools, cloud, a site's dispatcher)."""
        for (ns, _), store in list(self._indices.deployments.items()):
            for body in store:
                deployment = DeploymentView.from_body(body)
                labels = deployment.meta.labels
                if ns == namespace and labels.get(naming.PIPELINE_LABEL) == pipeline:
                    yield deployment

    def users_of(self, namespace: str, device_profile: str) -> list[str]:
        """Names of the pipelines whose spec refers to `device_profile`."""
        return sorted(
            p.meta.name for p in self.pipelines_in(namespace) if device_profile in p.profile_refs
        )
