"""The site dispatchers' counters in each pipeline's `status.pools[].measuredRate`.

Every interval (the edge readers' `--tuning-interval`) the operator reads `GET /distribution`
from each running dispatcher pod of each pipeline with `spec.distribution`, at the pod's own
address as it reads the edge pods (`controller.edge_reads`), and keeps each pod's latest read in
memory. Each pool's rate is the growth of the pool's `answered` counter since the pod's previous
read over the time between the reads, on this process's monotonic clock, summed over the
dispatcher pods (`controller.pool_rates`: a first read, or a restarted dispatcher, gives no rate
yet). A pod is known by its uid and its containers' restarts, so a restarted dispatcher starts
afresh even when its counters grew past the old ones.

Only `measuredRate` of the pools the dispatchers name is written, with a JSON patch that tests
each pool's name at its index (a list the reconcile rewrote meanwhile refuses the patch, and
the next round reads again), and only when a shown figure changed. The reconcile writes
`status.pools` whole but carries each pool's `measuredRate` over from the status it read
(`controller.site_status`), so a new decision keeps the measured figures; a reconcile that raced
a read may write back the figure before it, and the next read restores the new one.

An answer that is malformed, too large, slow or missing is logged and changes nothing: the
figures stay as they were, and the pod's previous read is kept, so its next good read measures
over the longer span.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from pydantic import ValidationError

from inferedge.api.site import SiteStatus
from inferedge.controller import naming
from inferedge.controller.cache import ObjectCache, ObjectKey
from inferedge.controller.edge_reads import (
    CONCURRENT_READS,
    MAX_ANSWER_BYTES,
    EdgePod,
    edge_pods,
    read_capped,
    read_forever,
)
from inferedge.controller.kube import PIPELINES, PODS, Kube, KubeError, NotFound
from inferedge.controller.pool_rates import CounterRead, PodRates, pod_rates, rate_patch, site_rates
from inferedge.controller.site_builders import DISPATCHER
from inferedge.core.errors import describe_validation_error, one_line

PATH: Final = "/distribution"


@dataclass(frozen=True)
class DispatcherPod:
    """A running dispatcher pod: what to read, and who it is (uid and restarts)."""

    pod: EdgePod
    identity: str


def dispatcher_pods(pods: Sequence[Mapping[str, Any]]) -> list[DispatcherPod]:
    """The running pods of a pod list, by name, with the URL of `GET /distribution` on their
    `http` port and their identity."""
    identities = {str((p.get("metadata") or {}).get("name")): pod_identity(p) for p in pods}
    return [DispatcherPod(pod, identities[pod.name]) for pod in edge_pods(pods, PATH)]


def pod_identity(pod: Mapping[str, Any]) -> str:
    """A pod's uid (its name without one) and its containers' restarts: a pod whose counters
    may have started again has another identity."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    restarts = sum(
        count
        for container in status.get("containerStatuses") or ()
        if isinstance(container, Mapping)
        and isinstance(count := container.get("restartCount"), int)
    )
    return f"{meta.get('uid') or meta.get('name')}#{restarts}"


class DispatcherReader:
    """Reads every site's dispatcher pods into its pools' `measuredRate`, every interval."""

    def __init__(
        self,
        *,
        objects: ObjectCache,
        kube: Kube,
        interval_s: float,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._objects, self._kube, self._logger = objects, kube, logger
        self._interval_s, self._clock = interval_s, clock
        self._reads = asyncio.Semaphore(CONCURRENT_READS)
        # Each pipeline's dispatcher pods' latest good read, by pod identity.
        self._last: dict[ObjectKey, dict[str, CounterRead]] = {}

    async def run(self) -> None:
        """Read every interval until cancelled."""
        await read_forever(
            self._interval_s, self.read_all, self._logger, "the dispatchers' counters"
        )

    async def read_all(self, session: aiohttp.ClientSession) -> None:
        """One round over every pipeline (a pipeline's failure does not stop the others)."""
        keys = self._objects.pipeline_keys()
        for gone in set(self._last) - set(keys):
            del self._last[gone]
        for key in keys:
            try:
                await self.read(session, key)
            except NotFound:
                pass  # deleted meanwhile
            except KubeError as exc:
                self._logger.warning("pipeline %s/%s: pools' measured rates: %s", *key, exc)

    async def read(self, session: aiohttp.ClientSession, key: ObjectKey) -> None:
        """Read one pipeline's dispatcher pods, and write the rates that changed."""
        pipeline = self._objects.pipeline(key)
        if (
            pipeline is None
            or pipeline.meta.deleting
            or not isinstance(pipeline.spec.get("distribution"), Mapping)
        ):
            self._last.pop(key, None)
            return
        namespace, name = key
        labels = {naming.INSTANCE_LABEL: name, naming.COMPONENT_LABEL: DISPATCHER}
        pods = dispatcher_pods(await self._kube.list(PODS, namespace, labels))
        answers = await asyncio.gather(*(self._read_pod(session, key, p.pod) for p in pods))
        before, kept = self._last.get(key, {}), {}
        parts = []
        for pod, read in zip(pods, answers, strict=True):
            if read is None:
                if pod.identity in before:
                    kept[pod.identity] = before[pod.identity]
                continue
            parts.append(
                PodRates(frozenset(read.answered), pod_rates(before.get(pod.identity), read))
            )
            kept[pod.identity] = read
        self._last[key] = kept
        if len(parts) < len(pods):
            return  # a pod's share is unknown: every figure stays as it was
        ops = rate_patch(pipeline.status.get("pools") or (), site_rates(parts))
        if not ops:
            return
        patched = await self._kube.json_patch(PIPELINES, namespace, name, ops, subresource="status")
        self._objects.remember(naming.PIPELINES, patched)

    async def _read_pod(
        self, session: aiohttp.ClientSession, key: ObjectKey, pod: EdgePod
    ) -> CounterRead | None:
        """The pod's counters and when they were read; None (logged) when it could not be read."""
        got = await self._fetch(session, pod)
        if isinstance(got, CounterRead):
            return got
        self._logger.warning(
            "pipeline %s/%s: dispatcher pod %s: %s; its pools' measured rates stay as they were",
            *key,
            pod.name,
            got,
        )
        return None

    async def _fetch(self, session: aiohttp.ClientSession, pod: EdgePod) -> CounterRead | str:
        """The pod's counters, or why there are none."""
        if pod.url is None:
            return "no pod address or port named http yet"
        async with self._reads:
            try:
                async with session.get(pod.url, allow_redirects=False) as response:
                    if response.status != 200:
                        return f"GET {PATH} answered {response.status}"
                    answer = await read_capped(response.content)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return f"GET {PATH}: {one_line(exc)}"
        at_s = self._clock()
        if answer is None:
            return f"its {PATH} answer is over {MAX_ANSWER_BYTES} bytes"
        try:
            status = SiteStatus.model_validate_json(answer)
        except ValidationError as exc:
            return describe_validation_error(exc, f"its {PATH} answer")
        return CounterRead(at_s, {pool.name: pool.answered for pool in status.pools})
