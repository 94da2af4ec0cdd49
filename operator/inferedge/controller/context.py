"""The operator's shared state: API client, stores, kopf's indices and the two reconcilers.

kopf keeps an in-memory index of every InferencePipeline, DeviceProfile and of the Jobs and
Deployments the operator made, and runs handlers only once those indices are filled after a
(re)start. The reconcilers read them instead of calling the API, so a restart sees the children
it made before and never makes them twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from inferedge.controller import naming
from inferedge.controller.builders import build_event
from inferedge.controller.children import now_rfc3339
from inferedge.controller.kube import Kube, KubeError
from inferedge.controller.observe import resource_version
from inferedge.controller.reconciler import Reconciler
from inferedge.controller.settings import (
    PROFILE_CHECK_INTERVAL_S,
    RESYNC_INTERVAL_S,
    OperatorOptions,
)
from inferedge.controller.stores import Stores
from inferedge.core.lifecycle import Event

ObjectKey = tuple[str, str]  # (namespace, name)
Body = dict[str, Any]


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


class Controller:
    """Everything a reconcile needs; one per operator process."""

    def __init__(
        self,
        *,
        kube: Kube,
        options: OperatorOptions,
        indices: Indices,
        logger: logging.Logger,
    ) -> None:
        self.kube = kube
        self.options = options
        self.indices = indices
        self.stores = Stores(kube)
        self.logger = logger
        self._written: dict[tuple[str, ObjectKey], Body] = {}
        self._periodic: list[asyncio.Task[None]] = []
        # Imported here: the reconcile modules import this one for typing.
        from inferedge.controller.pipelines import reconcile_pipeline
        from inferedge.controller.profiles import reconcile_device_profile

        self.pipelines: Reconciler[ObjectKey] = Reconciler(
            "InferencePipeline", lambda key: reconcile_pipeline(self, key), logger
        )
        self.profiles: Reconciler[ObjectKey] = Reconciler(
            "DeviceProfile", lambda key: reconcile_device_profile(self, key), logger
        )

    def start_periodic(self) -> None:
        """Start the resync and re-profiling schedules.

        One operator-wide task each, not kopf timers: a kopf timer puts a finalizer on every
        object it runs for, and a DeviceProfile has nothing outside the cluster to clean up.
        """
        loop = asyncio.get_running_loop()
        self._periodic = [
            loop.create_task(self._every(RESYNC_INTERVAL_S, self._resync_pipelines)),
            loop.create_task(self._every(PROFILE_CHECK_INTERVAL_S, self._check_profiles)),
        ]

    async def _every(self, seconds: float, action: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(seconds)  # a schedule, not a wait for something to happen
            action()

    def _resync_pipelines(self) -> None:
        for key in list(self.indices.pipelines):
            self.pipelines.nudge(key)

    def _check_profiles(self) -> None:
        for key in list(self.indices.device_profiles):
            self.profiles.nudge(key)

    async def close(self) -> None:
        """Stop reconciling and release the API client."""
        for task in self._periodic:
            task.cancel()
        await asyncio.gather(*self._periodic, return_exceptions=True)
        await self.pipelines.close()
        await self.profiles.close()
        self.kube.close()

    def _newest(self, kind: str, index: Mapping[Any, Any], key: ObjectKey) -> Body | None:
        indexed = _one(index, key)
        written = self._written.get((kind, key))
        if indexed is None:
            self._written.pop((kind, key), None)
            return None
        if written is not None and resource_version(written) > resource_version(indexed):
            return written
        return indexed

    async def post_event(self, body: Mapping[str, Any], event: Event) -> None:
        """Post an Event about `body`; a failure is logged, never raised (Events are advisory).

        Posted with the operator's own client rather than kopf's queue, so reconciles started
        outside a kopf handler (the periodic resync) can post too.
        """
        manifest = build_event(
            involved=body,
            type=event.type,
            reason=event.reason,
            message=event.message,
            component=self.options.reporting_component,
            now=now_rfc3339(),
        )
        try:
            await self.kube.create(manifest)
        except KubeError as exc:
            self.logger.warning("could not post Event %s: %s", event.reason, exc)

    def remember(self, kind: str, body: Body) -> None:
        """Keep the body a status write returned until the watch delivers it (or a newer one)."""
        meta = body.get("metadata") or {}
        self._written[(kind, (meta.get("namespace", ""), meta.get("name", "")))] = body

    def pipeline(self, key: ObjectKey) -> Body | None:
        """The newest copy of a pipeline this process has seen."""
        return self._newest(naming.PIPELINES, self.indices.pipelines, key)

    def device_profile(self, key: ObjectKey) -> Body | None:
        """The newest copy of a DeviceProfile this process has seen."""
        return self._newest(naming.DEVICE_PROFILES, self.indices.device_profiles, key)

    def job(self, namespace: str, name: str) -> Body | None:
        """A Job the operator made."""
        return _one(self.indices.jobs, (namespace, name))

    def deployment(self, namespace: str, name: str) -> Body | None:
        """A Deployment the operator made."""
        return _one(self.indices.deployments, (namespace, name))

    def pipelines_in(self, namespace: str) -> Iterator[Body]:
        """Every pipeline in `namespace` (in no particular order)."""
        for (ns, _), store in list(self.indices.pipelines.items()):
            if ns == namespace:
                yield from store

    def jobs_of(self, namespace: str, pipeline: str) -> Iterator[Body]:
        """The Jobs a pipeline owns (training and export)."""
        for (ns, _), store in list(self.indices.jobs.items()):
            for job in store:
                labels = job.get("metadata", {}).get("labels") or {}
                if ns == namespace and labels.get(naming.PIPELINE_LABEL) == pipeline:
                    yield job

    def users_of(self, namespace: str, device_profile: str) -> list[str]:
        """Names of the pipelines whose spec refers to `device_profile`."""
        names = []
        for body in self.pipelines_in(namespace):
            spec = body.get("spec") or {}
            refs = [(spec.get(role) or {}).get("profile") for role in ("edge", "cloud")]
            if device_profile in refs:
                names.append(str(body["metadata"]["name"]))
        return sorted(names)

    def nudge_users(self, namespace: str, device_profile: str) -> None:
        """Reconcile every pipeline that uses a DeviceProfile."""
        for name in self.users_of(namespace, device_profile):
            self.pipelines.nudge((namespace, name))
