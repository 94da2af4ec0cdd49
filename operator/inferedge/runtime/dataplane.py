"""The edge and cloud dataplanes: decode nothing, know no protocol, only run partitions.

KServe-style: HTTP (`inferedge.runtime.http`) and NATS entrypoints hand arrays in and answers
out. The edge reaches the cloud only through an injected `offload` coroutine, so the same code
runs against a broker, a direct call in tests, or anything else.

Hot reload: each request reads the partition (and the threshold) once, when it starts, and keeps
that object to the end; `swap` only changes what later requests see. No request is dropped, and
no request mixes two plans. The cloud keeps the plan it served before a swap, so offloads the
edge sent before it swapped too still get their answer.

Emulation: a `compute_slowdown` above 1 stretches every model call by that factor, holding the
compute thread the whole time, as a slower device would (`Partition.run_edge`); `inferedge run`
uses it to serve on the edge speed its DeviceProfile declares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from inferedge.core.errors import one_line
from inferedge.core.plan import Part
from inferedge.runtime.errors import NotReady, OffloadFailed, PlanMismatch
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.partition import (
    EdgeOutcome,
    Partition,
    PartitionError,
    RowResult,
    check_slowdown,
)
from inferedge.runtime.policy import BatchPolicy, degraded_choice, validate_threshold

log = logging.getLogger(__name__)

Location = Literal["edge", "cloud"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(_Frozen):
    """The answer for one sample, as every entrypoint returns it."""

    prediction: int = Field(description="Predicted class index.")
    confidence: float = Field(description="Confidence of the exit that answered, in [0, 1].")
    exit_index: int = Field(
        description="Which classifier answered, in path order: edge exits, cloud exits, then "
        "the final classifier (index = number of exits)."
    )
    cut_index: int = Field(description="Cut point of the classifier that answered.")
    location: Location = Field(description="Where the answering classifier ran.")
    degraded: bool = Field(
        default=False, description="The cloud did not answer; the best edge exit did."
    )
    plan_hash: str = Field(description="Plan of the partitions that computed the answer.")
    timings: dict[str, float] = Field(
        description="Milliseconds: edge_ms (the edge walk), edge_compute_ms (its model calls "
        "alone, emulated slowdown included), total_ms; transfer_ms and cloud_ms when the cloud "
        "answered; offload_ms (time lost on the failed offload) when degraded."
    )
    reason: str | None = Field(default=None, description="Why the answer is degraded.")


class OffloadContext(_Frozen):
    """What travels with an offloaded activation besides its bytes."""

    plan_hash: str = Field(description="Plan the edge split the request with.")
    threshold: float = Field(description="The edge's c_thr when the request started.")
    timeout_s: float = Field(description="How long the edge waits for the cloud's answer.")


class CloudAnswer(_Frozen):
    """The cloud's reply to one offload: an answer per offloaded row, in order."""

    plan_hash: str
    rows: tuple[RowResult, ...]
    queue_ms: float = Field(ge=0.0, description="Time waiting in the batcher.")
    compute_ms: float = Field(ge=0.0, description="Time running the batch.")
    batch_size: int = Field(ge=1, description="Samples in the batch this offload rode in.")

    @property
    def cloud_ms(self) -> float:
        """Time the request spent inside the cloud dataplane."""
        return self.queue_ms + self.compute_ms


Offload = Callable[[np.ndarray, OffloadContext], Awaitable[CloudAnswer]]
"""Send the split activations of the pending rows to the cloud and await its answer."""


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def _compute_thread(name: str) -> ThreadPoolExecutor:
    """The one thread a dataplane runs torch on, keeping the event loop free meanwhile.

    One thread, not a pool: torch already spreads one forward over the cores, and forwards
    started from several threads each bring their own OpenMP team, oversubscribing the cores.
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)


def _checked(partition: Partition | None, part: Part) -> Partition | None:
    if partition is not None and partition.part != part:
        raise PartitionError(f"the {part} dataplane cannot serve the {partition.part} part")
    if partition is not None and part == "cloud" and not partition.answers_everything:
        raise PartitionError(f"plan {partition.plan_hash} has an empty cloud part")
    return partition


class _InvalidCloudAnswer(Exception):
    """The cloud's reply does not fit the offload it answers."""


def _degrade_reason(exc: BaseException) -> str:
    """A short, bounded label for why an offload failed (a metric label, so no free text)."""
    # TimeoutError subclasses OSError, so it is tested first.
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, PlanMismatch):
        return "plan_mismatch"
    if isinstance(exc, NotReady):
        return "cloud_not_ready"
    if isinstance(exc, OSError):
        return "unreachable"
    if isinstance(exc, _InvalidCloudAnswer):
        return "invalid_answer"
    return "error"


@dataclass(frozen=True)
class _Source:
    """Where answers for some rows of a request were made, and how."""

    location: Location
    timings: dict[str, float]
    reason: str | None = None


_EDGE = _Source("edge", {})


class _Served:
    """What both dataplanes share: the partition being served and the live c_thr."""

    _part: Part

    def __init__(
        self,
        partition: Partition | None,
        threshold: float,
        metrics: Metrics | None,
        compute_slowdown: float = 1.0,
    ):
        self._partition = _checked(partition, self._part)
        self._threshold = validate_threshold(threshold)
        self.metrics = metrics if metrics is not None else Metrics()
        self.compute_slowdown = check_slowdown(compute_slowdown)

    @property
    def partition(self) -> Partition | None:
        """The partition new requests use (None before the first load)."""
        return self._partition

    @property
    def threshold(self) -> float:
        """c_thr for new requests (the cloud's default for offloads that carry none)."""
        return self._threshold

    @property
    def ready(self) -> bool:
        """Whether requests can be served: a partition is loaded (for the edge, the cloud is
        optional)."""
        return self._partition is not None

    def set_threshold(self, threshold: float) -> None:
        """Change c_thr live; requests already running keep the value they started with."""
        self._threshold = validate_threshold(threshold)

    def swap(self, partition: Partition) -> None:
        """Serve `partition` from the next request on; running requests finish on the old one."""
        self._partition = _checked(partition, self._part)


class EdgeDataplane(_Served):
    """Runs the edge part, answers at confident exits, offloads the rest, degrades on failure."""

    _part = "edge"

    def __init__(
        self,
        partition: Partition | None,
        *,
        threshold: float,
        offload: Offload,
        offload_timeout_s: float,
        metrics: Metrics | None = None,
        compute_slowdown: float = 1.0,
    ) -> None:
        if not offload_timeout_s > 0:
            raise PartitionError(f"offload_timeout_s must be > 0, got {offload_timeout_s!r}")
        super().__init__(partition, threshold, metrics, compute_slowdown)
        self._offload = offload
        self._timeout_s = float(offload_timeout_s)
        self._last_failure: str | None = None
        self._executor = _compute_thread("inferedge-edge")
        self._closed = False

    async def infer(self, x: np.ndarray) -> list[Answer]:
        """Answer every sample of `x` (one sample, or a batch along the first axis).

        Raises NotReady before a partition is loaded, PartitionError for input of the wrong
        shape, and OffloadFailed when the cloud fails and the edge part has no exit.
        """
        partition, threshold = self._partition, self._threshold
        if partition is None:
            raise NotReady("no partition loaded yet")
        if self._closed:
            raise NotReady("the edge dataplane is shut down")
        batch = partition.batch(np.asarray(x))
        started = time.perf_counter()
        outcome = await asyncio.get_running_loop().run_in_executor(
            self._executor,
            partial(partition.run_edge, batch, threshold, slowdown=self.compute_slowdown),
        )
        edge_ms = _ms(time.perf_counter() - started)
        placed = [
            (row, result, _EDGE) for row, result in enumerate(outcome.answers) if result is not None
        ]
        if outcome.pending:
            results, source = await self._offload_pending(partition, threshold, outcome)
            placed += [
                (row, result, source) for row, result in zip(outcome.pending, results, strict=True)
            ]
        total_ms = _ms(time.perf_counter() - started)
        answers: list[Answer | None] = [None] * batch.shape[0]
        for row, result, source in placed:
            answers[row] = Answer(
                prediction=result.prediction,
                confidence=result.confidence,
                exit_index=result.exit_index,
                cut_index=result.cut_index,
                location=source.location,
                degraded=source.reason is not None,
                plan_hash=partition.plan_hash,
                timings={
                    "edge_ms": edge_ms,
                    "edge_compute_ms": outcome.compute_ms,
                    **source.timings,
                    "total_ms": total_ms,
                },
                reason=source.reason,
            )
            self.metrics.answered(source.location, result.exit_index, total_ms / 1000.0)
        return [a for a in answers if a is not None]

    async def aclose(self) -> None:
        """Refuse new requests and release the compute thread once running ones are done."""
        self._closed = True
        self._executor.shutdown(wait=False)

    async def _offload_pending(
        self, partition: Partition, threshold: float, outcome: EdgeOutcome
    ) -> tuple[tuple[RowResult, ...], _Source]:
        count = len(outcome.pending)
        context = OffloadContext(
            plan_hash=partition.plan_hash, threshold=threshold, timeout_s=self._timeout_s
        )
        self.metrics.offloaded(count, outcome.activation.nbytes)
        sent = time.perf_counter()
        try:
            cloud = await asyncio.wait_for(
                self._offload(outcome.activation, context), self._timeout_s
            )
            if cloud.plan_hash != context.plan_hash or len(cloud.rows) != count:
                raise _InvalidCloudAnswer(
                    f"cloud answered {len(cloud.rows)} rows of plan {cloud.plan_hash} "
                    f"for {count} rows of plan {context.plan_hash}"
                )
        except Exception as exc:  # any failure of the remote side degrades, never fails
            return self._degrade(partition, outcome, exc, _ms(time.perf_counter() - sent))
        round_trip_ms = _ms(time.perf_counter() - sent)
        if self._last_failure is not None:
            log.info("the cloud answers again (plan %s)", partition.plan_hash)
            self._last_failure = None
        timings = {
            "transfer_ms": max(round_trip_ms - cloud.cloud_ms, 0.0),
            "cloud_ms": cloud.cloud_ms,
        }
        return cloud.rows, _Source("cloud", timings)

    def _degrade(
        self, partition: Partition, outcome: EdgeOutcome, exc: Exception, offload_ms: float
    ) -> tuple[tuple[RowResult, ...], _Source]:
        reason = _degrade_reason(exc)
        count = len(outcome.pending)
        if reason == "plan_mismatch":
            self.metrics.plan_mismatch.inc()
        if reason != self._last_failure:
            # Logged on a change of state only: an outage must not write a line per request.
            log.warning("offload failed (%s): %s; answering from edge exits", reason, one_line(exc))
            self._last_failure = reason
        choices = [degraded_choice(candidates) for candidates in outcome.candidates]
        results = []
        for choice in choices:
            if choice is None:
                self.metrics.failed.labels(reason=reason).inc(count)
                raise OffloadFailed(
                    f"the cloud did not answer ({reason}: {one_line(exc)}) and the edge part of "
                    f"plan {partition.plan_hash} has no exit to answer instead"
                ) from exc
            cut = partition.exit_cut(choice.exit_index)
            results.append(RowResult(choice.prediction, choice.confidence, choice.exit_index, cut))
        self.metrics.degraded.labels(reason=reason).inc(count)
        return tuple(results), _Source("edge", {"offload_ms": offload_ms}, reason)


@dataclass(eq=False)
class _Queued:
    """One offload waiting in the batcher, with the partition it was accepted for."""

    partition: Partition
    activation: np.ndarray
    thresholds: list[float]
    future: asyncio.Future[CloudAnswer]
    enqueued: float

    @property
    def size(self) -> int:
        return int(self.activation.shape[0])


class _Batcher:
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
        self._executor = _compute_thread("inferedge-cloud")
        self._closed = False

    @property
    def queued_samples(self) -> int:
        """Samples accepted but not yet in a running batch."""
        return sum(q.size for q in self._queue)

    def submit(self, queued: _Queued) -> None:
        """Accept one offload; its future resolves when its batch has run."""
        if self._closed:
            raise NotReady("the cloud dataplane is shut down")
        self._queue.append(queued)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._serve())
            self._task.add_done_callback(self._stopped)

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

    async def _next_batch(self) -> list[_Queued]:
        while True:
            if any(q.future.done() for q in self._queue):
                # The caller gave up (its offload timed out): no point computing its rows.
                self._queue = deque(q for q in self._queue if not q.future.done())
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            group = self._head_group()
            waited_ms = _ms(time.monotonic() - self._queue[0].enqueued)
            # More requests wait than fit the group (it is full, or another plan's requests
            # follow it): waiting cannot grow it.
            capped = len(group) < len(self._queue)
            if capped or self.policy.flush_now(sum(group), waited_ms):
                return [self._queue.popleft() for _ in range(self.policy.take(group))]
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), self.policy.wait_budget_ms(waited_ms) / 1000.0
                )

    def _head_group(self) -> list[int]:
        """Sizes of the leading requests that share the first one's partition, up to one batch.

        A batch never mixes plans: requests accepted before a swap run on the old partition.
        """
        first = self._queue[0].partition
        sizes: list[int] = []
        total = 0
        for queued in self._queue:
            if queued.partition is not first or total >= self.policy.max_batch_size:
                break
            sizes.append(queued.size)
            total += queued.size
        return sizes

    async def _run(self, batch: list[_Queued]) -> None:
        partition = batch[0].partition
        started = time.monotonic()
        self._running = batch
        try:
            x = np.concatenate([q.activation for q in batch])
            thresholds = [t for q in batch for t in q.thresholds]
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor,
                partial(partition.run_cloud, x, thresholds, slowdown=self._slowdown),
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
        compute_ms = _ms(time.monotonic() - started)
        samples = int(x.shape[0])
        self._metrics.batch_size.observe(samples)
        offset = 0
        for queued in batch:
            rows = tuple(results[offset : offset + queued.size])
            offset += queued.size
            if queued.future.done():
                continue
            queue_ms = _ms(started - queued.enqueued)
            self._metrics.queue_seconds.observe(queue_ms / 1000.0)
            for row in rows:
                self._metrics.answered("cloud", row.exit_index, (queue_ms + compute_ms) / 1000.0)
            queued.future.set_result(
                CloudAnswer(
                    plan_hash=partition.plan_hash,
                    rows=rows,
                    queue_ms=queue_ms,
                    compute_ms=compute_ms,
                    batch_size=samples,
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


class CloudDataplane(_Served):
    """Continues offloaded activations from the split, batching concurrent offloads."""

    _part = "cloud"

    def __init__(
        self,
        partition: Partition | None,
        *,
        batch_policy: BatchPolicy,
        threshold: float,
        metrics: Metrics | None = None,
        compute_slowdown: float = 1.0,
    ) -> None:
        super().__init__(partition, threshold, metrics, compute_slowdown)
        self._batcher = _Batcher(batch_policy, self.metrics, self.compute_slowdown)
        self._previous: Partition | None = None

    @property
    def plan_hashes(self) -> tuple[str, ...]:
        """The plans this cloud answers offloads for: the served one, then the one before it."""
        return tuple(p.plan_hash for p in (self._partition, self._previous) if p is not None)

    def swap(self, partition: Partition) -> None:
        """Serve `partition` from now on, still answering offloads of the plan served until now.

        Edges swap after the cloud (a reload reaches the cloud first), so for a while they still
        send offloads of the old plan; keeping it answers those instead of refusing them.
        """
        old = self._partition
        super().swap(partition)
        if old is not None and old.plan_hash != partition.plan_hash:
            self._previous = old

    @property
    def batch_policy(self) -> BatchPolicy:
        """How concurrent offloads are grouped."""
        return self._batcher.policy

    @property
    def queued_samples(self) -> int:
        """Samples accepted and waiting for their batch."""
        return self._batcher.queued_samples

    async def handle(
        self, activation: np.ndarray, plan_hash: str, threshold: float | None = None
    ) -> CloudAnswer:
        """Answer one offload: split activations (one sample or a batch) of plan `plan_hash`.

        `threshold` is the c_thr to test cloud exits against (the edge's, usually); None uses
        this dataplane's own. Raises PlanMismatch when `plan_hash` is not the served plan,
        NotReady before a partition is loaded, PartitionError for a malformed activation.
        """
        if self._partition is None:
            raise NotReady("no partition loaded yet")
        found = [p for p in (self._partition, self._previous) if p and p.plan_hash == plan_hash]
        if not found:
            self.metrics.plan_mismatch.inc()
            raise PlanMismatch(
                f"offload is for plan {plan_hash!r}, this cloud serves plan "
                f"{' and '.join(self.plan_hashes)}"
            )
        partition = found[0]
        batch = partition.batch(np.asarray(activation))
        c_thr = self._threshold if threshold is None else validate_threshold(threshold)
        self.metrics.activation_bytes.observe(batch.nbytes)
        future: asyncio.Future[CloudAnswer] = asyncio.get_running_loop().create_future()
        self._batcher.submit(
            _Queued(partition, batch, [c_thr] * batch.shape[0], future, time.monotonic())
        )
        return await future

    async def aclose(self) -> None:
        """Stop batching; offloads still waiting fail with NotReady."""
        await self._batcher.close()
