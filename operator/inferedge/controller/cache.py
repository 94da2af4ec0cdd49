"""The objects the operator sees: kopf's indices, plus the status writes not yet watched back.

kopf keeps an in-memory index of every InferencePipeline and DeviceProfile and of the Jobs and
Deployments the operator made, and runs handlers only once those indices are filled after a
(re)start. The reconcilers read them instead of calling the API, so a restart sees the children
it made before and never makes them twice.

A status write returns the object as the server stored it, and the watch delivers that copy a
little later. Until it does, the written copy stands in for the indexed one, so a reconcile that
runs meanwhile does not see its own status as not yet written (and post its Events twice).
resourceVersion is opaque, so copies are told apart by equality only: the written copy is used
while the index still holds the version it held when the status was written.
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


@dataclass(frozen=True)
class _Written:
    """A body a status write returned, and the version the index held when it was written."""

    body: Body
    indexed_version: str | None


def _one(index: Mapping[Any, Any], key: ObjectKey) -> Body | None:
    store = index.get(key)
    if store is None:
        return None
    return next(iter(store), None)


def _version(body: Body | None) -> str | None:
    return Meta.from_body(body).resource_version if body is not None else None


class ObjectCache:
    """The newest copy of every object this process has seen, as typed views."""

    def __init__(self, indices: Indices) -> None:
        self._indices = indices
        self._written: dict[tuple[str, ObjectKey], _Written] = {}

    def remember(self, kind: str, body: Body) -> None:
        """Keep the body a status write returned until the watch delivers a newer copy."""
        meta = Meta.from_body(body)
        index = self._index(kind)
        indexed = _one(index, meta.key)
        self._written[(kind, meta.key)] = _Written(body, _version(indexed))

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
        if _version(indexed) == written.indexed_version:
            return written.body  # the watch has delivered nothing since the write
        # The index moved on. Watch events arrive in order, so it holds the written copy or a
        # later one, or, when another change raced the write, an earlier one whose successor
        # (the written copy) is delivered right after it and nudges another reconcile.
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

    def users_of(self, namespace: str, device_profile: str) -> list[str]:
        """Names of the pipelines whose spec refers to `device_profile`."""
        return sorted(
            p.meta.name for p in self.pipelines_in(namespace) if device_profile in p.profile_refs
        )
