"""The edge pods' knob tuners in each pipeline's `status.tuning` (read by `controller.edge_reads`).

An edge pod whose DeviceProfile has `spec.tuning` serves its tuner's report at `GET /tuning`;
the operator reads the latest window (`?windows=1`) and shows, per pod, its setting and that
window, and the mean cost over the pods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from pydantic import BaseModel

from inferedge.api.pipeline_status import PodTuning, TuningStatus
from inferedge.api.tuning import TuningReport
from inferedge.controller.cache import ObjectCache
from inferedge.controller.edge_reads import patch_body
from inferedge.core.conditions import Event

OFF: Final = "the pod serves no /tuning: its tuner did not start (its log says why)"


def pod_tuning(pod: str, report: TuningReport) -> PodTuning:
    """What the status shows of one pod's report: its setting and its latest window."""
    latest = report.windows[-1] if report.windows else None
    batch = report.setting.get("batch")
    return PodTuning(
        pod=pod,
        state="Tuning",
        optimiser=report.optimiser,
        emulated=report.emulated,
        batch_size=int(batch) if batch is not None and 1 <= batch <= 65536 else None,
        cpu_mhz=_mhz(report.setting.get("cpu_khz")) if report.clocks else None,
        gpu_mhz=_mhz(report.setting.get("gpu_khz")) if report.clocks else None,
        cost=None if latest is None else round(latest.cost, 4),
        latency_ms=None if latest is None else round(latest.latency_ms, 2),
        energy_j_per_request=None if latest is None else _significant(latest.energy_j_per_request),
        converged=None if latest is None else latest.converged,
        windows=report.window_count,
    )


def _significant(value: float) -> float:
    # a few digits: the status is written only when a figure changes, and noise is not news
    return float(f"{value:.4g}")


def _mhz(khz: float | None) -> float | None:
    return None if khz is None or khz < 0 else round(khz / 1000.0, 1)


def tuning_status(pods: Sequence[PodTuning], unlisted: int, now: str) -> TuningStatus:
    """The status of a pipeline's edge pods; its cost is the mean over those with one."""
    costs = [p.cost for p in pods if p.cost is not None]
    return TuningStatus(
        updated_at=now,
        cost=round(sum(costs) / len(costs), 4) if costs else None,
        pods=tuple(pods),
        unlisted_pods=unlisted,
    )


class TuningReading:
    """`status.tuning`: what `EdgeReader` reads for pipelines whose edge DeviceProfile tunes."""

    field = "tuning"
    path = "/tuning"
    query: Mapping[str, str] = {"windows": "1"}

    def wanted(self, objects: ObjectCache, namespace: str, spec: Mapping[str, Any]) -> bool:
        """Whether the pipeline's edge DeviceProfile has `spec.tuning`."""
        edge = spec.get("edge")
        ref = edge.get("profile") if isinstance(edge, Mapping) else None
        if not isinstance(ref, str):
            return False
        profile = objects.device_profile((namespace, ref))
        return profile is not None and isinstance(profile.spec.get("tuning"), Mapping)

    def entry(self, pod: str, answer: bytes) -> BaseModel:
        """The pod's entry from its validated report."""
        return pod_tuning(pod, TuningReport.model_validate_json(answer))

    def off(self, pod: str) -> BaseModel:
        """A pod whose tuner did not start."""
        return PodTuning(pod=pod, state="Off", message=OFF)

    def unreachable(self, pod: str, message: str) -> BaseModel:
        """A pod that could not be read."""
        return PodTuning(pod=pod, state="Unreachable", message=message[:1024])

    def status(self, entries: Sequence[Any], unlisted: int, now: str) -> dict[str, Any]:
        """`status.tuning` as a merge patch."""
        return patch_body(tuning_status(entries, unlisted, now))

    def events(self, before: object, after: Mapping[str, Any]) -> list[Event]:
        """None: the tuner's windows are news for /metrics, not for Events."""
        return []
