"""The edge's serving stack, built from its `ServeConfig`: the offload path (emulated link,
link watch, coalescer, transport), the dataplane behind its request batcher, and, for an
operating space, the adapter that moves it between points and the prober that keeps the link
measured when no offload does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from inferedge.core.link import Link
from inferedge.core.space import SpaceInputs
from inferedge.runtime.adaptation import Adapter
from inferedge.runtime.coalescing import Coalescer
from inferedge.runtime.dataplane import EdgeDataplane
from inferedge.runtime.edge_batching import EdgeBatcher, release_at_offload
from inferedge.runtime.emulation import LinkSchedule, emulated_link
from inferedge.runtime.link_estimator import LinkEstimator
from inferedge.runtime.link_probe import LinkProber
from inferedge.runtime.link_watch import watched_link
from inferedge.runtime.messages import CloudAnswer, Offload, OffloadContext
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.partition import Partition, PartitionError
from inferedge.runtime.serve_config import ServeConfig
from inferedge.runtime.step_timings import StepTimings

# How often the oracle reads the true link: well under any trace's step, and cheap (a lookup).
ORACLE_PERIOD_S = 0.05
# How often the map is rebuilt from the measured step times (tens of ms, off the event loop).
CORRECT_PERIOD_S = 2.0
# Calls a step must have made before its time is believed.
MIN_CALLS = 5


@dataclass
class Edge:
    """A built edge: its batcher (and dataplane), and for a space its adapter and prober."""

    batcher: EdgeBatcher
    adapter: Adapter | None = None
    prober: LinkProber | None = None
    schedule: LinkSchedule | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        """Start the prober, and the oracle's reading of the true link."""
        if self.prober is not None:
            self._tasks.append(asyncio.create_task(self.prober.run()))
        adapter, schedule = self.adapter, self.schedule
        if adapter is not None and adapter.mode == "oracle" and schedule is not None:
            self._tasks.append(asyncio.create_task(_follow_truth(adapter, schedule)))
        if adapter is not None and adapter.mode != "off":  # the static plan keeps its figures
            self._tasks.append(asyncio.create_task(_correct(adapter, adapter.timings)))

    async def aclose(self) -> None:
        """Stop the background tasks, then the batcher."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.batcher.aclose()


async def _correct(adapter: Adapter, timings: StepTimings) -> None:
    while True:
        await asyncio.sleep(CORRECT_PERIOD_S)  # a schedule, not a wait for readiness
        measured = timings.snapshot(MIN_CALLS)
        # The map is rebuilt off the loop; the switch itself is made on it, between requests.
        rebuilt = await asyncio.to_thread(adapter.rebuilt, measured)
        if rebuilt is not None:
            adapter.install(rebuilt)


async def _follow_truth(adapter: Adapter, schedule: LinkSchedule) -> None:
    while True:
        adapter.observe(schedule.now())
        await asyncio.sleep(ORACLE_PERIOD_S)


def build_edge(
    config: ServeConfig,
    partition: Partition,
    threshold: float,
    offload: Offload,
    space: SpaceInputs | None = None,
) -> Edge:
    """The edge's dataplane (`Edge.batcher.dataplane`) behind its request batcher, offloading
    through `offload` (the transport) as `config` says: what `serve` serves over HTTP, and the
    handle through which the batch size and wait are changed while serving.

    With `space` (the space file of `partition`'s set), the edge starts on the configuration
    map's point for the declared link and adapts as `config.adapt` says; `threshold` is then
    the point's, not the given one. Without, a `config.pin_point` is a baseline's route."""
    if space is None and config.pin_point is not None:
        # A plain set's baseline: one route for good, no map to follow.
        partition = partition.at(config.pin_point)
    schedule = None
    if config.emulated_link is not None:
        schedule = LinkSchedule(config.emulated_link, config.emulated_link_origin)
        offload = emulated_link(offload, schedule, config.encoding)
    if config.adapt == "oracle" and (space is None or schedule is None):
        raise PartitionError("adapt 'oracle' needs an operating space and an emulated link")
    metrics = Metrics()
    initial = config.declared_link or (
        config.emulated_link if isinstance(config.emulated_link, Link) else Link()
    )
    estimator = LinkEstimator(initial)
    observers: list[Callable[[Link], object]] = []
    answered: list[Callable[[OffloadContext, CloudAnswer], object]] = []

    def on_estimate(link: Link) -> None:
        for observer in observers:
            observer(link)

    def on_answer(context: OffloadContext, answer: CloudAnswer) -> None:
        for observer in answered:
            observer(context, answer)

    watched = watched_link(
        offload,
        estimator,
        metrics,
        config.encoding,
        on_estimate=on_estimate,
        on_answer=on_answer,
    )
    # Coalesced before the link: a group crosses it as the one message it is.
    coalesced = Coalescer(watched, max_in_flight=config.offloads_in_flight)
    dataplane = EdgeDataplane(
        partition,
        threshold=threshold,
        # The next batch computes while this one waits for the cloud.
        offload=release_at_offload(coalesced),
        offload_timeout_s=config.offload_timeout_s,
        metrics=metrics,
        compute_slowdown=config.compute_slowdown,
        answer_at=config.answer_at_exit,
    )
    batcher = EdgeBatcher(
        dataplane, batch_size=config.edge_batch_size, max_wait_ms=config.edge_max_wait_ms
    )
    if space is None:
        return Edge(batcher)
    adapter = Adapter(
        dataplane,
        partition,
        space,
        mode=config.adapt,
        policy=config.switch_policy,
        pin=config.pin_point,
    )
    prober = LinkProber(
        watched,
        estimate=lambda: estimator.estimate,
        plan_hash=lambda: partition.plan_hash,
        metrics=metrics,
        interval_s=config.probe_interval_s,
        timeout_s=config.offload_timeout_s,
    )
    observers.append(lambda _: prober.measured())
    answered.append(lambda context, answer: adapter.observe_cloud(context.point, answer))
    if config.adapt != "oracle":  # the oracle is told the true link instead
        observers.append(adapter.observe)
    return Edge(batcher, adapter, prober, schedule)
