"""The edge's request batching: requests that arrive while its compute is busy run together.

`EdgeBatcher.infer` answers like `EdgeDataplane.infer`, and only its timings tell them apart.
Requests queue in arrival order; once the edge's compute is free, the leading requests whose
rows fit `batch_size` samples run as one `EdgeDataplane.infer` call, and each caller gets its own
rows' answers. A request is never split, and one larger than the batch runs alone. The rule is
`BatchPolicy.due`, the one the cloud's batcher follows, so both batch alike.

`max_wait_ms` 0 takes whatever waits as soon as the compute is free: no latency is added at low
load, and batches grow with the load. Above 0, a batch short of `batch_size` samples waits up to
that long after its oldest request arrived for others to join. Both knobs may change while
serving (an online tuner moves them); a change applies from the next batch on.

The compute is free again when a batch's edge part is done. A batch whose rows all exit at the
edge is done when its call returns; one that offloads is done once it sends its offload, when
the edge would only wait for the cloud: wrap the offload with `release_at_offload` so that the
next batch computes meanwhile, as requests did before batching (without it, a batch holds the
compute until the cloud has answered too).

The queue is bounded (`max_queued_samples`, the `admit` rule of the cloud): a request past it is
refused at once with EdgeBusy rather than left to wait. A caller that stops waiting (cancelled,
its client gone) leaves the queue; its rows are not computed. Each answer gains `queue_ms`, its
wait in the queue, and every batch that answered is reported to `on_batch` as a `BatchRecord`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

from inferedge.core.errors import InferedgeError, one_line
from inferedge.runtime.compute import ms
from inferedge.runtime.dataplane import EdgeDataplane
from inferedge.runtime.errors import NotReady
from inferedge.runtime.messages import Answer, CloudAnswer, Offload, OffloadContext
from inferedge.runtime.policy import BatchPolicy, admit

__all__ = ["BatchRecord", "EdgeBatcher", "EdgeBusy", "release_at_offload"]

log = logging.getLogger(__name__)

# The event of the batch whose task is running: its offload sets it to free the compute.
_COMPUTE_FREE: ContextVar[asyncio.Event | None] = ContextVar("inferedge_compute_free", default=None)


class EdgeBusy(InferedgeError):
    """The edge's request queue is full; the request was refused at once (retry later)."""


@dataclass(frozen=True)
class BatchRecord:
    """One batch the edge answered, for an online tuner. Times are `time.perf_counter()`
    seconds; `waits_s` and `latencies_s` hold one entry per request, in queue order (the wait
    from arrival to the batch's start, the latency from arrival to the answer); `compute_s` is
    the time its model calls held the compute (`edge_compute_ms`, emulated slowdown included)."""

    size: int
    requests: int
    started: float
    finished: float
    waits_s: tuple[float, ...]
    latencies_s: tuple[float, ...]
    compute_s: float


@dataclass(eq=False)
class _Queued:
    """One request waiting for its batch: its rows, its caller's future, when it arrived."""

    rows: np.ndarray
    future: asyncio.Future[list[Answer]]
    arrived: float

    @property
    def size(self) -> int:
        return int(self.rows.shape[0])


def release_at_offload(offload: Offload) -> Offload:
    """`offload`, telling the batcher that the calling batch's edge part is done.

    Wrap the offload the `EdgeDataplane` calls (the outermost layer, so that it runs in the
    batch's own task): the next batch then computes while this one waits for the cloud.
    """

    async def releasing(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        free = _COMPUTE_FREE.get()
        if free is not None:
            free.set()
        return await offload(activation, context)

    return releasing


class EdgeBatcher:
    """Runs queued requests on `dataplane` in batches of up to `batch_size` samples, one batch
    computing at a time (the edge has one compute thread).

    Every accepted request's caller gets its answers, the error its batch raised, or NotReady
    when the batcher closes first. `on_batch`, which may be set at any time, receives a
    `BatchRecord` per answered batch; what it raises is logged, never passed on.
    """

    def __init__(
        self,
        dataplane: EdgeDataplane,
        *,
        batch_size: int = 1,
        max_wait_ms: float = 0.0,
        max_queued_samples: int = 256,
        on_batch: Callable[[BatchRecord], None] | None = None,
    ) -> None:
        self._dataplane = dataplane
        self._metrics = dataplane.metrics
        self._policy = BatchPolicy(batch_size, max_wait_ms, max_queued_samples)
        self.on_batch = on_batch
        self._queue: deque[_Queued] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def dataplane(self) -> EdgeDataplane:
        """The dataplane every batch runs on (its partition, threshold, metrics)."""
        return self._dataplane

    @property
    def policy(self) -> BatchPolicy:
        """The batch size, maximum wait and queue bound the next batch is formed by."""
        return self._policy

    @property
    def queued_samples(self) -> int:
        """Samples waiting for a batch (not those of batches running)."""
        return sum(q.size for q in self._queue)

    def set_batch_size(self, batch_size: int) -> None:
        """Run batches of up to `batch_size` samples (an integer >= 1) from the next batch on;
        PolicyError otherwise."""
        self._policy = dataclasses.replace(self._policy, max_batch_size=batch_size)
        self._changed()

    def set_max_wait_ms(self, max_wait_ms: float) -> None:
        """Let a batch short of `batch_size` wait up to `max_wait_ms` (finite, >= 0) after its
        oldest request arrived, from the next batch on; PolicyError otherwise."""
        self._policy = dataclasses.replace(self._policy, max_wait_ms=max_wait_ms)
        self._changed()

    def _changed(self) -> None:
        # A batch still forming is formed again under the new rule: it may be due now.
        self._wake.set()

    async def infer(self, x: np.ndarray) -> list[Answer]:
        """Answer every sample of `x` (one sample, or a batch along the first axis) in the next
        batch that takes it, as `EdgeDataplane.infer` does, with `queue_ms` in each answer's
        timings.

        Raises NotReady before a partition is loaded and once closed, PartitionError for input
        of the wrong shape, EdgeBusy when the queue is full, and whatever the batch raised.
        """
        partition = self._dataplane.partition
        if partition is None:
            raise NotReady("no partition loaded yet")
        if self._closed:
            raise NotReady("the edge's batcher is shut down")
        # Checked here, so that a malformed request fails alone instead of failing its batch.
        rows = partition.batch(np.asarray(x))
        queued, bound = self.queued_samples, self._policy.max_queued_samples
        if not admit(queued, int(rows.shape[0]), bound):
            raise EdgeBusy(
                f"the edge has {queued} samples queued; {rows.shape[0]} more would pass its "
                f"bound of {bound}; retry later"
            )
        loop = asyncio.get_running_loop()
        request = _Queued(rows, loop.create_future(), time.perf_counter())
        self._queue.append(request)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._serve())
            self._task.add_done_callback(self._stopped)
        try:
            return await request.future
        except asyncio.CancelledError:
            if request in self._queue:
                self._queue.remove(request)
            raise

    async def aclose(self) -> None:
        """Refuse new requests, stop running batches and fail every waiting caller with
        NotReady."""
        self._closed = True
        tasks = [t for t in (self._task, *self._batches) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail(list(self._queue), NotReady("the edge's batcher is shutting down"))
        self._queue.clear()

    async def _serve(self) -> None:
        while True:
            batch = await self._next_batch()
            free = asyncio.Event()
            task = asyncio.get_running_loop().create_task(self._run(batch, free))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
            await free.wait()

    async def _next_batch(self) -> list[_Queued]:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            policy = self._policy
            waited_ms = ms(time.perf_counter() - self._queue[0].arrived)
            if count := policy.due([q.size for q in self._queue], waited_ms):
                return [self._queue.popleft() for _ in range(count)]
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), policy.wait_budget_ms(waited_ms) / 1000.0)

    async def _run(self, batch: list[_Queued], free: asyncio.Event) -> None:
        _COMPUTE_FREE.set(free)
        started = time.perf_counter()
        waits = tuple(started - q.arrived for q in batch)
        try:
            x = batch[0].rows if len(batch) == 1 else np.concatenate([q.rows for q in batch])
            self._metrics.edge_batch_size.observe(x.shape[0])
            for wait in waits:
                self._metrics.edge_queue_seconds.observe(wait)
            answers = await self._dataplane.infer(x)
        except asyncio.CancelledError:
            self._fail(batch, NotReady("the edge's batcher is shutting down"))
            raise
        except Exception as exc:  # whatever broke the batch is every member's answer
            self._fail(batch, exc)
            return
        finally:
            free.set()
        finished = time.perf_counter()
        offset = 0
        for request, wait in zip(batch, waits, strict=True):
            mine = answers[offset : offset + request.size]
            offset += request.size
            if not request.future.done():
                queue = {"queue_ms": ms(wait)}
                request.future.set_result(
                    [a.model_copy(update={"timings": {**queue, **a.timings}}) for a in mine]
                )
        self._report(
            BatchRecord(
                size=int(x.shape[0]),
                requests=len(batch),
                started=started,
                finished=finished,
                waits_s=waits,
                latencies_s=tuple(finished - q.arrived for q in batch),
                compute_s=answers[0].timings["edge_compute_ms"] / 1000.0,
            )
        )

    def _report(self, record: BatchRecord) -> None:
        if self.on_batch is None:
            return
        try:
            self.on_batch(record)
        except Exception as exc:  # an observer's bug must not fail the answers it observes
            log.warning("on_batch failed: %s", one_line(exc))

    def _stopped(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # A bug in the worker must not leave callers waiting forever.
            log.error("edge batcher stopped: %s", one_line(exc))
            self._fail(list(self._queue), exc)
            self._queue.clear()

    @staticmethod
    def _fail(batch: list[_Queued], exc: BaseException) -> None:
        for request in batch:
            if not request.future.done():
                request.future.set_exception(exc)
