"""Reading the edge pods' knob tuners into each pipeline's `status.tuning`.

An edge pod whose DeviceProfile has `spec.tuning` serves its tuner's report at `GET /tuning` on
its `http` port. Every interval the operator reads the latest window from each running edge pod
of each such pipeline, at the pod's own address as Prometheus scrapes them (edge pods have no
Service, and going through the API server's pod proxy would put every read on the API server),
and merge-patches `status.tuning` alone: the reconciler neither compares nor writes it. It
writes only when a figure changed, so an idle pipeline costs no writes.

What a pod answers is untrusted input: the body is size-capped and validated against
`TuningReport`, and a pod that answers badly, slowly or not at all is shown as Unreachable
with the reason, never as figures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from pydantic import ValidationError
from yarl import URL

from inferedge.api.pipeline_status import MAX_TUNING_PODS, PodTuning, TuningStatus
from inferedge.api.tuning import TuningReport
from inferedge.controller import naming
from inferedge.controller.cache import ObjectCache, ObjectKey
from inferedge.controller.children import now_rfc3339
from inferedge.controller.kube import PIPELINES, PODS, Kube, KubeError, NotFound
from inferedge.controller.observe import without_nulls
from inferedge.core.errors import describe_validation_error, one_line

READ_TIMEOUT_S: Final = 3.0
MAX_ANSWER_BYTES: Final = 256 * 1024
# How many pods are read at once, across all pipelines.
CONCURRENT_READS: Final = 8
OFF: Final = "the pod serves no /tuning: its tuner did not start (its log says why)"


@dataclass(frozen=True)
class EdgePod:
    """An edge pod to read: its name, and where its `/tuning` is (None: no address yet)."""

    name: str
    url: URL | None


def edge_pods(pods: Sequence[Mapping[str, Any]]) -> list[EdgePod]:
    """The running edge pods of a pod list, by name, with the URL of their `/tuning`."""
    found = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") != "Running":
            continue
        ip, port = status.get("podIP"), _http_port(pod)
        url = None
        if isinstance(ip, str) and ip and port is not None:
            url = URL.build(
                scheme="http", host=ip, port=port, path="/tuning", query={"windows": "1"}
            )
        found.append(EdgePod(str(meta.get("name")), url))
    return sorted(found, key=lambda p: p.name)


def _http_port(pod: Mapping[str, Any]) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            number = port.get("containerPort")
            if port.get("name") == "http" and isinstance(number, int) and 0 < number < 65536:
                return number
    return None


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


def _patch_body(status: TuningStatus) -> dict[str, Any]:
    # Within `pods` (a list, replaced whole) unknown figures are left out; at the top a null
    # removes a figure that is no longer known, as a merge patch does.
    dumped = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {**dict.fromkeys(f.alias or n for n, f in TuningStatus.model_fields.items()), **dumped}


def same_figures(before: object, after: Mapping[str, Any]) -> bool:
    """Whether two `status.tuning` bodies differ only in when they were read."""
    if not isinstance(before, Mapping):
        return False
    same: bool = _figures(before) == _figures(after)
    return same


def _figures(body: Mapping[str, Any]) -> Any:
    return without_nulls({k: v for k, v in body.items() if k != "updatedAt"})


class TuningReader:
    """Reads the edge pods' `/tuning` into `status.tuning`, every `interval_s`."""

    def __init__(
        self, objects: ObjectCache, kube: Kube, interval_s: float, logger: logging.Logger
    ) -> None:
        self._objects, self._kube, self._logger = objects, kube, logger
        self._interval_s = interval_s
        self._reads = asyncio.Semaphore(CONCURRENT_READS)

    async def run(self) -> None:
        """Read every interval until cancelled."""
        timeout = aiohttp.ClientTimeout(total=READ_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await asyncio.sleep(self._interval_s)  # a schedule, not a wait for readiness
                try:
                    await self.read_all(session)
                except Exception:  # a bug must not end the reading for good
                    self._logger.exception("reading the edge pods' tuning failed")

    async def read_all(self, session: aiohttp.ClientSession) -> None:
        """One round over every pipeline (a pipeline's failure does not stop the others)."""
        for key in self._objects.pipeline_keys():
            try:
                await self.read(session, key)
            except NotFound:
                pass  # deleted meanwhile
            except KubeError as exc:
                self._logger.warning("pipeline %s/%s: tuning status: %s", *key, exc)

    async def read(self, session: aiohttp.ClientSession, key: ObjectKey) -> None:
        """Read one pipeline's edge pods, and write `status.tuning` if a figure changed."""
        pipeline = self._objects.pipeline(key)
        if pipeline is None or pipeline.meta.deleting:
            return
        namespace, name = key
        body: dict[str, Any] | None = None
        if self._tunes(namespace, pipeline.spec):
            labels = {naming.INSTANCE_LABEL: name, naming.COMPONENT_LABEL: "edge"}
            pods = edge_pods(await self._kube.list(PODS, namespace, labels))
            if pods:
                read = pods[:MAX_TUNING_PODS]
                entries = await asyncio.gather(*(self._read_pod(session, pod) for pod in read))
                status = tuning_status(entries, len(pods) - len(read), now_rfc3339())
                body = _patch_body(status)
        before = pipeline.status.get("tuning")
        if body is None and before is None:
            return
        if body is not None and same_figures(before, body):
            return
        patched = await self._kube.patch(
            PIPELINES, namespace, name, {"status": {"tuning": body}}, subresource="status"
        )
        self._objects.remember(naming.PIPELINES, patched)

    def _tunes(self, namespace: str, spec: Mapping[str, Any]) -> bool:
        edge = spec.get("edge")
        ref = edge.get("profile") if isinstance(edge, Mapping) else None
        if not isinstance(ref, str):
            return False
        profile = self._objects.device_profile((namespace, ref))
        return profile is not None and isinstance(profile.spec.get("tuning"), Mapping)

    async def _read_pod(self, session: aiohttp.ClientSession, pod: EdgePod) -> PodTuning:
        if pod.url is None:
            return _unreachable(pod.name, "no pod address or port named http yet")
        async with self._reads:
            try:
                async with session.get(pod.url, allow_redirects=False) as response:
                    if response.status == 404:
                        return PodTuning(pod=pod.name, state="Off", message=OFF)
                    if response.status != 200:
                        return _unreachable(pod.name, f"GET /tuning answered {response.status}")
                    answer = await _read_capped(response.content)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return _unreachable(pod.name, f"GET /tuning: {one_line(exc)}")
        if answer is None:
            return _unreachable(pod.name, f"its /tuning answer is over {MAX_ANSWER_BYTES} bytes")
        try:
            return pod_tuning(pod.name, TuningReport.model_validate_json(answer))
        except ValidationError as exc:
            return _unreachable(pod.name, describe_validation_error(exc, "its /tuning answer"))


async def _read_capped(content: aiohttp.StreamReader) -> bytes | None:
    """The whole body, or None once it is longer than `MAX_ANSWER_BYTES`."""
    answer = bytearray()
    async for chunk in content.iter_chunked(64 * 1024):
        answer += chunk
        if len(answer) > MAX_ANSWER_BYTES:
            return None
    return bytes(answer)


def _unreachable(pod: str, message: str) -> PodTuning:
    return PodTuning(pod=pod, state="Unreachable", message=message[:1024])
