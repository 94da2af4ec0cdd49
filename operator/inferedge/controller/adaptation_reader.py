"""The edge pods' operating points in each pipeline's `status.adaptation` (read by
`controller.edge_reads`).

An edge pod serving an operating space (`spec.adaptation`) answers `GET /adaptation` with the
point it serves, the link it estimates and its switches. The status shows each pod's, the
first pod's split (a printer column) and the switches of all of them; when the switches grow,
an Event says where the pods moved, at most one a minute per pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from pydantic import BaseModel

from inferedge.api.adaptation import AdaptationReport
from inferedge.api.pipeline_status import AdaptationStatus, PodAdaptation
from inferedge.controller.cache import ObjectCache
from inferedge.controller.edge_reads import patch_body
from inferedge.core.conditions import Event

OFF: Final = "the pod serves no /adaptation: its artifact set is not an operating space"


def pod_adaptation(pod: str, report: AdaptationReport) -> PodAdaptation:
    """What the status shows of one pod's report."""
    point = report.point
    return PodAdaptation(
        pod=pod,
        state="Adapting",
        mode=report.mode,
        split=point.split,
        edge_exits=point.edge_exits,
        cloud_exits=point.cloud_exits,
        threshold=point.threshold,
        # a few digits: the status is written only when a figure changes, and noise is not news
        bandwidth_mbps=float(f"{report.latest.bandwidth_mbps:.2g}"),
        rtt_ms=float(f"{report.latest.rtt_ms:.2g}"),
        feasible=point.feasible,
        switches=report.switches,
        corrections=report.corrections,
    )


def adaptation_status(pods: Sequence[PodAdaptation], unlisted: int, now: str) -> AdaptationStatus:
    """The status of a pipeline's edge pods."""
    splits = [p.split for p in pods if p.split is not None]
    return AdaptationStatus(
        updated_at=now,
        split=splits[0] if splits else None,
        switches=sum(p.switches or 0 for p in pods),
        pods=tuple(pods),
        unlisted_pods=unlisted,
    )


def switch_events(before: object, after: Mapping[str, Any]) -> list[Event]:
    """An Event when the pods' switches grew: where they serve now."""
    was = before.get("switches", 0) if isinstance(before, Mapping) else 0
    now = after.get("switches", 0)
    if not isinstance(was, int) or not isinstance(now, int) or now <= was:
        return []
    where = "; ".join(
        f"{p['pod']}: split {p['split']}, c_thr {p.get('threshold')}, "
        f"link ~{p.get('bandwidthMbps')} Mbps"
        for p in after.get("pods", ())
        if isinstance(p, Mapping) and p.get("split") is not None
    )
    return [Event("Normal", "PointSwitched", f"{now - was} switch(es) of operating point; {where}")]


class AdaptationReading:
    """`status.adaptation`: what `EdgeReader` reads for pipelines with `spec.adaptation`."""

    field = "adaptation"
    path = "/adaptation"
    query: Mapping[str, str] = {}

    def wanted(self, objects: ObjectCache, namespace: str, spec: Mapping[str, Any]) -> bool:
        """Whether the pipeline has `spec.adaptation`."""
        return isinstance(spec.get("adaptation"), Mapping)

    def entry(self, pod: str, answer: bytes) -> BaseModel:
        """The pod's entry from its validated report."""
        return pod_adaptation(pod, AdaptationReport.model_validate_json(answer))

    def off(self, pod: str) -> BaseModel:
        """A pod that serves no operating space."""
        return PodAdaptation(pod=pod, state="Off", message=OFF)

    def unreachable(self, pod: str, message: str) -> BaseModel:
        """A pod that could not be read."""
        return PodAdaptation(pod=pod, state="Unreachable", message=message[:1024])

    def status(self, entries: Sequence[Any], unlisted: int, now: str) -> dict[str, Any]:
        """`status.adaptation` as a merge patch."""
        return patch_body(adaptation_status(entries, unlisted, now))

    def events(self, before: object, after: Mapping[str, Any]) -> list[Event]:
        """`PointSwitched` when the pods moved."""
        return switch_events(before, after)
