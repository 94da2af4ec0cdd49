"""Reading something every running edge pod serves into one field of its pipeline's status.

Edge pods serve their knob tuner's report at `GET /tuning` and, when they serve an operating
space, their adapter's at `GET /adaptation`. Every interval the operator reads each running
edge pod of each pipeline that has one, at the pod's own address as Prometheus scrapes them
(edge pods have no Service, and going through the API server's pod proxy would put every read
on the API server), and merge-patches that one status field alone: the reconciler neither
compares nor writes it. It writes only when a figure changed, so an idle pipeline costs no
writes. A `Reading` says what is read and how it is shown (`controller.tuning_reader`,
`controller.adaptation_reader`); this module does the reading.

What a pod answers is untrusted input: the body is size-capped and validated by the reading,
and a pod that answers badly, slowly or not at all is shown as Unreachable with the reason,
never as figures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import aiohttp
from pydantic import BaseModel, ValidationError
from yarl import URL

from inferedge.api.pipeline_status import MAX_TUNING_PODS
from inferedge.controller import naming
from inferedge.controller.cache import ObjectCache, ObjectKey
from inferedge.controller.children import now_rfc3339
from inferedge.controller.events import EventPoster
from inferedge.controller.kube import PIPELINES, PODS, Kube, KubeError, NotFound
from inferedge.controller.observe import without_nulls
from inferedge.core.conditions import Event
from inferedge.core.errors import describe_validation_error, one_line

READ_TIMEOUT_S: Final = 3.0
MAX_ANSWER_BYTES: Final = 256 * 1024
# How many pods are read at once, across all pipelines.
CONCURRENT_READS: Final = 8
# At most one Event per pipeline and reading in this long: a flapping link must not flood.
EVENT_INTERVAL_S: Final = 60.0


@dataclass(frozen=True)
class EdgePod:
    """An edge pod to read: its name, and the URL to read (None: no address yet)."""

    name: str
    url: URL | None


def edge_pods(
    pods: Sequence[Mapping[str, Any]], path: str, query: Mapping[str, str] | None = None
) -> list[EdgePod]:
    """The running edge pods of a pod list, by name, with the URL of `path` on their `http`
    port."""
    found = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") != "Running":
            continue
        ip, port = status.get("podIP"), _http_port(pod)
        url = None
        if isinstance(ip, str) and ip and port is not None:
            url = URL.build(scheme="http", host=ip, port=port, path=path, query=query or {})
        found.append(EdgePod(str(meta.get("name")), url))
    return sorted(found, key=lambda p: p.name)


def _http_port(pod: Mapping[str, Any]) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            number = port.get("containerPort")
            if port.get("name") == "http" and isinstance(number, int) and 0 < number < 65536:
                return number
    return None


def same_figures(before: object, after: Mapping[str, Any]) -> bool:
    """Whether two status bodies differ only in when they were read (`updatedAt`)."""
    if not isinstance(before, Mapping):
        return False
    same: bool = _figures(before) == _figures(after)
    return same


def _figures(body: Mapping[str, Any]) -> Any:
    return without_nulls({k: v for k, v in body.items() if k != "updatedAt"})


def patch_body(status: BaseModel) -> dict[str, Any]:
    """A status model as a merge patch: within lists (replaced whole) unknown figures are left
    out; at the top a null removes a figure that is no longer known."""
    dumped = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    fields = type(status).model_fields
    return {**dict.fromkeys(f.alias or n for n, f in fields.items()), **dumped}


class Reading(Protocol):
    """What an `EdgeReader` reads from each pod, and how the status shows it."""

    field: str
    """The status field written, e.g. 'tuning'."""
    path: str
    query: Mapping[str, str]

    def wanted(self, objects: ObjectCache, namespace: str, spec: Mapping[str, Any]) -> bool:
        """Whether a pipeline's edge pods serve it."""
        ...

    def entry(self, pod: str, answer: bytes) -> BaseModel:
        """A pod's entry from its answer; ValidationError when the answer is malformed."""
        ...

    def off(self, pod: str) -> BaseModel:
        """The entry of a pod that answered 404: it serves none."""
        ...

    def unreachable(self, pod: str, message: str) -> BaseModel:
        """The entry of a pod that could not be read."""
        ...

    def status(self, entries: Sequence[Any], unlisted: int, now: str) -> dict[str, Any]:
        """The status field's merge-patch body for these entries."""
        ...

    def events(self, before: object, after: Mapping[str, Any]) -> list[Event]:
        """Events worth posting about the change from `before` to `after`."""
        ...


async def read_forever(
    interval_s: float,
    read_all: Callable[[aiohttp.ClientSession], Awaitable[None]],
    logger: logging.Logger,
    what: str,
) -> None:
    """`read_all` every `interval_s` on one HTTP session until cancelled; a failure is logged,
    and the next round reads again."""
    timeout = aiohttp.ClientTimeout(total=READ_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            await asyncio.sleep(interval_s)  # a schedule, not a wait for readiness
            try:
                await read_all(session)
            except Exception:  # a bug must not end the reading for good
                logger.exception("reading %s failed", what)


class EdgeReader:
    """Reads one `Reading` from every pipeline's edge pods into its status, every interval."""

    def __init__(
        self,
        reading: Reading,
        *,
        objects: ObjectCache,
        kube: Kube,
        events: EventPoster,
        interval_s: float,
        logger: logging.Logger,
    ) -> None:
        self.reading = reading
        self._objects, self._kube, self._events, self._logger = objects, kube, events, logger
        self._interval_s = interval_s
        self._reads = asyncio.Semaphore(CONCURRENT_READS)
        self._posted: dict[ObjectKey, float] = {}

    async def run(self) -> None:
        """Read every interval until cancelled."""
        await read_forever(
            self._interval_s, self.read_all, self._logger, f"the edge pods' {self.reading.field}"
        )

    async def read_all(self, session: aiohttp.ClientSession) -> None:
        """One round over every pipeline (a pipeline's failure does not stop the others)."""
        for key in self._objects.pipeline_keys():
            try:
                await self.read(session, key)
            except NotFound:
                pass  # deleted meanwhile
            except KubeError as exc:
                self._logger.warning("pipeline %s/%s: %s status: %s", *key, self.reading.field, exc)

    async def read(self, session: aiohttp.ClientSession, key: ObjectKey) -> None:
        """Read one pipeline's edge pods, and write the status field if a figure changed."""
        pipeline = self._objects.pipeline(key)
        if pipeline is None or pipeline.meta.deleting:
            return
        namespace, name = key
        reading = self.reading
        body: dict[str, Any] | None = None
        if reading.wanted(self._objects, namespace, pipeline.spec):
            labels = {naming.INSTANCE_LABEL: name, naming.COMPONENT_LABEL: "edge"}
            listed = await self._kube.list(PODS, namespace, labels)
            pods = edge_pods(listed, reading.path, reading.query)
            if pods:
                read = pods[:MAX_TUNING_PODS]  # the rest are counted
                entries = await asyncio.gather(*(self._read_pod(session, pod) for pod in read))
                body = reading.status(entries, len(pods) - len(read), now_rfc3339())
        before = pipeline.status.get(reading.field)
        if body is None and before is None:
            return
        if body is not None and same_figures(before, body):
            return
        patched = await self._kube.patch(
            PIPELINES, namespace, name, {"status": {reading.field: body}}, subresource="status"
        )
        self._objects.remember(naming.PIPELINES, patched)
        if body is not None:
            await self._post(key, patched, reading.events(before, body))

    async def _post(self, key: ObjectKey, involved: Mapping[str, Any], events: list[Event]) -> None:
        now = time.monotonic()
        if not events or now - self._posted.get(key, -EVENT_INTERVAL_S) < EVENT_INTERVAL_S:
            return
        self._posted[key] = now
        for event in events:
            await self._events.post(involved, event)

    async def _read_pod(self, session: aiohttp.ClientSession, pod: EdgePod) -> BaseModel:
        reading, where = self.reading, f"GET {self.reading.path}"
        if pod.url is None:
            return reading.unreachable(pod.name, "no pod address or port named http yet")
        async with self._reads:
            try:
                async with session.get(pod.url, allow_redirects=False) as response:
                    if response.status == 404:
                        return reading.off(pod.name)
                    if response.status != 200:
                        return reading.unreachable(pod.name, f"{where} answered {response.status}")
                    answer = await read_capped(response.content)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return reading.unreachable(pod.name, f"{where}: {one_line(exc)}")
        if answer is None:
            return reading.unreachable(
                pod.name, f"its {reading.path} answer is over {MAX_ANSWER_BYTES} bytes"
            )
        try:
            return reading.entry(pod.name, answer)
        except ValidationError as exc:
            return reading.unreachable(
                pod.name, describe_validation_error(exc, f"its {reading.path} answer")
            )


async def read_capped(content: aiohttp.StreamReader) -> bytes | None:
    """The whole body, or None once it is longer than `MAX_ANSWER_BYTES`."""
    answer = bytearray()
    async for chunk in content.iter_chunked(64 * 1024):
        answer += chunk
        if len(answer) > MAX_ANSWER_BYTES:
            return None
    return bytes(answer)
