"""Typed, read-only views of the raw API bodies the reconcilers read.

The API returns plain JSON; each view lifts the fields the operator reads into typed attributes
once (`from_body`), leniently: a missing or mistyped field reads as absent, never as an error,
since a reconcile must be able to report on any object it is given. A view keeps the raw body
only where it is handed on unchanged (as an owner reference, or to compare a status).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from inferedge.api.pipeline_status import InferencePipelineStatus
from inferedge.controller.profiling import Recorded
from inferedge.core.conditions import Condition, conditions_from_status

Body = Mapping[str, Any]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return str(value) if value else None


def _count(value: Any) -> int:
    """A counter the API leaves out while it is zero."""
    return int(value) if value else 0


@dataclass(frozen=True)
class Meta:
    """The metadata every object has."""

    name: str
    namespace: str
    uid: str
    generation: int | None
    resource_version: str | None
    creation_timestamp: str | None
    deleting: bool
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @classmethod
    def from_body(cls, body: Body) -> Meta:
        """The metadata of `body`."""
        meta = _mapping(body.get("metadata"))
        generation = meta.get("generation")
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            uid=str(meta.get("uid", "")),
            generation=int(generation) if generation is not None else None,
            resource_version=_text(meta.get("resourceVersion")),
            creation_timestamp=_text(meta.get("creationTimestamp")),
            deleting=bool(meta.get("deletionTimestamp")),
            labels=_mapping(meta.get("labels")),
            annotations=_mapping(meta.get("annotations")),
        )

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name), as kopf's indices and the reconcilers address objects."""
        return (self.namespace, self.name)


@dataclass(frozen=True)
class PipelineView:
    """An InferencePipeline as read: its spec is validated by the reconcile, not here."""

    meta: Meta
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    raw: Body

    @classmethod
    def from_body(cls, body: Body) -> PipelineView:
        """The view of an InferencePipeline body."""
        return cls(
            meta=Meta.from_body(body),
            spec=_mapping(body.get("spec")),
            status=_mapping(body.get("status")),
            raw=body,
        )

    @property
    def last_status(self) -> InferencePipelineStatus:
        """The status as last written; empty when there is none or it is not one of ours."""
        try:
            return InferencePipelineStatus.model_validate(self.status)
        except ValidationError:
            return InferencePipelineStatus()

    @property
    def profile_refs(self) -> tuple[str, ...]:
        """The DeviceProfiles the spec names: `spec.edge.profile` or each of `spec.edge.pools`,
        and `spec.cloud.profile`."""
        edge = _mapping(self.spec.get("edge"))
        pools = edge.get("pools")
        entries = [edge, *(pools if isinstance(pools, list) else ()), self.spec.get("cloud")]
        refs = (_mapping(entry).get("profile") for entry in entries)
        return tuple(dict.fromkeys(ref for ref in refs if isinstance(ref, str)))


@dataclass(frozen=True)
class DeviceProfileView:
    """A DeviceProfile as read, with the profiles its status records."""

    meta: Meta
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    results: tuple[Recorded, ...]
    node: str | None
    conditions: tuple[Condition, ...]
    raw: Body

    @classmethod
    def from_body(cls, body: Body) -> DeviceProfileView:
        """The view of a DeviceProfile body."""
        status = _mapping(body.get("status"))
        results = tuple(
            Recorded(str(r.get("model")), str(r.get("uri")), str(r.get("profiledAt")))
            for r in status.get("results") or ()
            if isinstance(r, Mapping)
        )
        node = status.get("node")
        return cls(
            meta=Meta.from_body(body),
            spec=_mapping(body.get("spec")),
            status=status,
            results=results,
            node=str(node) if node is not None else None,
            conditions=conditions_from_status(status),
            raw=body,
        )

    def result(self, label: str) -> Recorded | None:
        """The recorded profile named `label` (`<model>@<key>`), if any."""
        return next((r for r in self.results if r.label == label), None)


@dataclass(frozen=True)
class JobCondition:
    """One entry of a Job's status.conditions."""

    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str | None


@dataclass(frozen=True)
class JobView:
    """A batch/v1 Job as read."""

    meta: Meta
    conditions: tuple[JobCondition, ...]
    completion_time: str | None

    @classmethod
    def from_body(cls, body: Body) -> JobView:
        """The view of a Job body."""
        status = _mapping(body.get("status"))
        conditions = tuple(
            JobCondition(
                type=str(c.get("type", "")),
                status=str(c.get("status", "")),
                reason=str(c.get("reason") or ""),
                message=str(c.get("message") or ""),
                last_transition_time=_text(c.get("lastTransitionTime")),
            )
            for c in status.get("conditions") or ()
            if isinstance(c, Mapping)
        )
        return cls(
            meta=Meta.from_body(body),
            conditions=conditions,
            completion_time=_text(status.get("completionTime")),
        )


@dataclass(frozen=True)
class DeploymentView:
    """An apps/v1 Deployment as read: its wanted replicas and how its rollout stands."""

    meta: Meta
    replicas: int | None  # None: the API default (1)
    observed_generation: int
    updated_replicas: int
    ready_replicas: int

    @classmethod
    def from_body(cls, body: Body) -> DeploymentView:
        """The view of a Deployment body."""
        spec = _mapping(body.get("spec"))
        status = _mapping(body.get("status"))
        replicas = spec.get("replicas")
        return cls(
            meta=Meta.from_body(body),
            replicas=None if replicas is None else int(replicas),
            observed_generation=_count(status.get("observedGeneration")),
            updated_replicas=_count(status.get("updatedReplicas")),
            ready_replicas=_count(status.get("readyReplicas")),
        )
