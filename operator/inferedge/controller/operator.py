"""One operator process: the object cache, the stores, and the two reconcilers, wired together.

This is the composition root. Each reconciler is given exactly what it needs; the two nudge
each other (a pipeline asks its DeviceProfiles to profile its model, a DeviceProfile's new
results move its pipelines on), so each gets the other's `nudge` as a plain callable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from inferedge.controller.adaptation_reader import AdaptationReading
from inferedge.controller.cache import Indices, ObjectCache, ObjectKey
from inferedge.controller.dispatcher_reader import DispatcherReader
from inferedge.controller.edge_reads import EdgeReader
from inferedge.controller.events import EventPoster
from inferedge.controller.kube import Kube
from inferedge.controller.pipeline_facts import Sources
from inferedge.controller.pipelines import PipelineReconciler
from inferedge.controller.profiles import DeviceProfileReconciler
from inferedge.controller.reconciler import Reconciler
from inferedge.controller.settings import (
    PROFILE_CHECK_INTERVAL_S,
    RESYNC_INTERVAL_S,
    OperatorOptions,
)
from inferedge.controller.stores import Stores
from inferedge.controller.tuning_reader import TuningReading


class Operator:
    """What the kopf handlers share; one per operator process."""

    def __init__(
        self,
        *,
        kube: Kube,
        options: OperatorOptions,
        indices: Indices,
        logger: logging.Logger,
    ) -> None:
        self.kube = kube
        self.objects = ObjectCache(indices)
        self.stores = Stores(kube)
        self.events = EventPoster(kube, options.reporting_component, logger)
        self._periodic: list[asyncio.Task[None]] = []
        # The edge pods' own reports, each into a status field of its own; one interval.
        self.edge_readers = [
            EdgeReader(
                reading,
                objects=self.objects,
                kube=kube,
                events=self.events,
                interval_s=options.tuning_interval_s,
                logger=logger,
            )
            for reading in (TuningReading(), AdaptationReading())
        ]
        # The site dispatchers' counters, into status.pools[].measuredRate; the same interval.
        self.dispatcher_reader = DispatcherReader(
            objects=self.objects, kube=kube, interval_s=options.tuning_interval_s, logger=logger
        )
        pipelines = PipelineReconciler(
            sources=Sources(
                objects=self.objects,
                kube=kube,
                stores=self.stores,
                images=options.images,
                nats_secrets=options.nats_secrets,
                clock_agent_dir=options.clock_agent_dir,
            ),
            events=self.events,
            nudge_profile=self._nudge_profile,
            logger=logger,
        )
        profiles = DeviceProfileReconciler(
            objects=self.objects,
            kube=kube,
            images=options.images,
            events=self.events,
            nudge_pipeline=self._nudge_pipeline,
            logger=logger,
        )
        self.pipelines: Reconciler[ObjectKey] = Reconciler("InferencePipeline", pipelines, logger)
        self.profiles: Reconciler[ObjectKey] = Reconciler("DeviceProfile", profiles, logger)

    def _nudge_profile(self, key: ObjectKey) -> None:
        self.profiles.nudge(key)

    def _nudge_pipeline(self, key: ObjectKey) -> None:
        self.pipelines.nudge(key)

    def nudge_users(self, namespace: str, device_profile: str) -> None:
        """Reconcile every pipeline that uses a DeviceProfile."""
        for name in self.objects.users_of(namespace, device_profile):
            self.pipelines.nudge((namespace, name))

    def start_periodic(self) -> None:
        """Start the resync, re-profiling, edge-reading (tuning, adaptation) and dispatcher-reading
        (pools' measured rates) schedules.

        One operator-wide task each, not kopf timers: a kopf timer puts a finalizer on every
        object it runs for, and a DeviceProfile has nothing outside the cluster to clean up.
        """
        loop = asyncio.get_running_loop()
        self._periodic = [
            loop.create_task(self._every(RESYNC_INTERVAL_S, self._resync_pipelines)),
            loop.create_task(self._every(PROFILE_CHECK_INTERVAL_S, self._check_profiles)),
            *(loop.create_task(reader.run()) for reader in self.edge_readers),
            loop.create_task(self.dispatcher_reader.run()),
        ]

    async def _every(self, seconds: float, action: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(seconds)  # a schedule, not a wait for something to happen
            action()

    def _resync_pipelines(self) -> None:
        for key in self.objects.pipeline_keys():
            self.pipelines.nudge(key)

    def _check_profiles(self) -> None:
        for key in self.objects.device_profile_keys():
            self.profiles.nudge(key)

    async def close(self) -> None:
        """Stop reconciling and release the API client."""
        for task in self._periodic:
            task.cancel()
        await asyncio.gather(*self._periodic, return_exceptions=True)
        await self.pipelines.close()
        await self.profiles.close()
        self.kube.close()
