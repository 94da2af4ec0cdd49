"""The cloud's dynamic batcher: concurrent offloads grouped into batches by a `BatchPolicy`.

Offloads queue in arrival order; a batch is the leading run of queued offloads of one partition
that fits `max_batch_size` samples. It runs once nothing more can join it (it is full, or the
offload after it cannot join) or its oldest offload has waited `max_wait_ms`. An offload is never
split across batches, and a batch never mixes partitions (the cloud dataplane splits large
offloads into batch-sized pieces before they get here).

Offloads whose deadline passes while they wait are dropped before their batch runs, with
DeadlineExpired, and counted (`inferedge_shed_total{reason="expired"}`): the edge has given up
on them, so computing them would only delay the ones it still waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np

from inferedge.core.errors import one_line
from inferedge.runtime.compute import compute_thread, ms
from inferedge.runtime.errors import DeadlineExpired, NotReady
from inferedge.runtime.messages import CloudAnswer
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.partition import RowResult
from inferedge.runtime.policy import BatchPolicy, expired

log = logging.getLogger(__name__)


class CloudPart(Protocol):
    """What the batcher runs a batch on: the cloud part of a plan (a `Partition`)."""

    @property
    def plan_hash(self) -> str:
        """The plan the part belongs to, stamped on every answer."""
        ...

    def run_cloud(
        self, x: np.ndarray, thresholds: Sequence[float], *, slowdown: float = 1.0
    ) -> list[RowResult]:
        """An answer per row of `x`, each row tested against its own threshold."""
        ...


@dataclass(eq=False)
class _Queued:
    """One offload waiting in the batcher, with the partition it was accepted for."""

    part: CloudPart
    activation: np.ndarray
    thresholds: list[float]
    future: asyncio.Future[CloudAnswer]
    enqueued: float
    deadline: float | None = None

    @property
    def size(self) -> int:
        return int(self.activation.shape[0])


class Batcher:
    """Groups concurrent offloads into batches by `BatchPolicy` and runs one batch at a time.

    One batch at a time is deliberate: torch already spreads a batch over the cores, and while
    it runs, new offloads pile up into the next, larger batch. Every accepted request's future
    is resolved: with its answer, with the batch's error, or with NotReady on shutdown.
    """

    def __init__(self, policy: BatchPolicy, metrics: Metrics, slowdown: float) -> None:
        self.policy = policy
        self._metrics = metrics
        self._slowdown = slowdown
        self._queue: deque[_Queued] = deque()
        self._running: list[_Queued] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor = compute_thread("inferedge-cloud")
        self._closed = False

    @property
    def queued_samples(self) -> int:
        """Samples accepted but not yet in a running batch."""
        return sum(q.size for q in self._queue)

    async def submit(
        self,
        part: CloudPart,
        activation: np.ndarray,
        thresholds: Sequence[float],
        deadline: float | None = None,
    ) -> CloudAnswer:
        """Run `activation` (a batch, one threshold per row) on `part` in the next batch that
        takes it, and return its rows' answers.

        Raises NotReady once the batcher is closed (or closes before the batch runs),
        DeadlineExpired when `deadline` (`time.monotonic()`) passes before the batch runs, and
        whatever the batch raised when it failed. A caller that stops waiting (cancelled, timed
        out) leaves the queue: its rows are not computed.
        """
        if self._closed:
            raise NotReady("the cloud dataplane is shut down")
        now = time.monotonic()
        if expired(deadline, now):
            raise self._expired(int(activation.shape[0]), now - (deadline or now))
        future: asyncio.Future[CloudAnswer] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(part, activation, list(thresholds), future, now, deadline))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._serve())
            self._task.add_done_callback(self._stopped)
        return await future

    async def close(self) -> None:
        """Stop the worker and fail whatever is still waiting with NotReady."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail(list(self._queue), NotReady("the cloud dataplane is shutting down"))
        self._queue.clear()
        self._executor.shutdown(wait=False)

    async def _serve(self) -> None:
        while True:
            batch = await self._next_batch()
            await self._run(batch)

    def _expired(self, samples: int, late_s: float) -> DeadlineExpired:
        self._metrics.shed.labels(reason="expired").inc()
        return DeadlineExpired(
            f"dropped {samples} rows {ms(late_s):.0f} ms past the deadline the edge sent, "
            "before computing them"
        )

    def _drop_stale(self) -> None:
        """Drop queued offloads whose caller gave up or whose deadline passed."""
        now = time.monotonic()
        for queued in self._queue:
            if not queued.future.done() and expired(queued.deadline, now):
                late_s = now - (queued.deadline or now)
                queued.future.set_exception(self._expired(queued.size, late_s))
        if any(q.future.done() for q in self._queue):
            # The caller gave up (its offload timed out): no point computing its rows.
            self._queue = deque(q for q in self._queue if not q.future.done())

    async def _next_batch(self) -> list[_Queued]:
        while True:
            self._drop_stale()
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            group = self._head_group()
            waited_ms = ms(time.monotonic() - self._queue[0].enqueued)
            # More requests wait than fit the group (it is full, or another plan's requests
            # follow it): waiting cannot grow it.
            capped = len(group) < len(self._queue)
            if count := self.policy.due(group, waited_ms, blocked=capped):
                return [self._queue.popleft() for _ in range(count)]
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), self.policy.wait_budget_ms(waited_ms) / 1000.0
                )

    def _head_group(self) -> list[int]:
        """Sizes of the leading requests that share the first one's partition, up to one batch.

        A batch never mixes plans: requests accepted before a swap run on the old partition.
        """
        first = self._queue[0].part
        sizes: list[int] = []
        total = 0
        for queued in self._queue:
            if queued.part is not first or total >= self.policy.max_batch_size:
                break
            sizes.append(queued.size)
            total += queued.size
        return sizes

    async def _run(self, batch: list[_Queued]) -> None:
        part = batch[0].part
        started = time.monotonic()
        self._running = batch
        try:
            x = np.concatenate([q.activation for q in batch])
            thresholds = [t for q in batch for t in q.thresholds]
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor,
                partial(part.run_cloud, x, thresholds, slowdown=self._slowdown),
            )
        except asyncio.CancelledError:
            self._fail(batch, NotReady("the cloud dataplane is shutting down"))
            raise
        except Exception as exc:  # whatever broke the batch is every member's answer
            log.warning("cloud batch of %d failed: %s", len(batch), one_line(exc))
            self._fail(batch, exc)
            return
        finally:
            self._running = []
        compute_ms = ms(time.monotonic() - started)
        samples = int(x.shape[0])
        self._metrics.batch_size.observe(samples)
        offset = 0
        for queued in batch:
            rows = tuple(results[offset : offset + queued.size])
            offset += queued.size
            if queued.future.done():
                continue
            queue_ms = ms(started - queued.enqueued)
            self._metrics.queue_seconds.observe(queue_ms / 1000.0)
            for row in rows:
                self._metrics.answered("cloud", row.exit_index, (queue_ms + compute_ms) / 1000.0)
            queued.future.set_result(
                CloudAnswer(
                    plan_hash=part.plan_hash,
                    rows=rows,
                    queue_ms=queue_ms,
                    compute_ms=compute_ms,
                    batch_size=samples,
                    max_batch_size=self.policy.max_batch_size,
                )
            )

    def _stopped(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # A bug in the worker must not leave callers waiting forever.
            log.error("cloud batcher stopped: %s", one_line(exc))
            self._fail([*self._running, *self._queue], exc)
            self._queue.clear()

    @staticmethod
    def _fail(batch: list[_Queued], exc: BaseException) -> None:
        for queued in batch:
            if not queued.future.done():
                queued.future.set_exception(exc)
