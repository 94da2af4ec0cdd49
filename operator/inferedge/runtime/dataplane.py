"""The edge and cloud dataplanes: decode nothing, know no protocol, only run partitions.

KServe-style: HTTP (`inferedge.runtime.http`) and NATS entrypoints hand arrays in and answers
out. The edge reaches the cloud only through an injected `offload` coroutine, so the same code
runs against a broker, a direct call in tests, or anything else. What they exchange is in
`inferedge.runtime.messages`; the cloud (`inferedge.runtime.cloud`) batches concurrent offloads
with `inferedge.runtime.batching`.

Hot reload: each request reads the partition (and the threshold) once, when it starts, and keeps
that object to the end; `swap` only changes what later requests see. No request is dropped, and
no request mixes two plans. The cloud keeps the plan it served before a swap, so offloads the
edge sent before it swapped too still get their answer.

Non-finite answers: a classifier that says NaN (inputs near float32's limits overflow inside
the model) has no answer to give. The edge falls back to its most confident finite exit, or
answers prediction -1 and confidence 0; either way the row is degraded with the reason
`invalid_answer`, and no NaN or infinity ever reaches a response.

Emulation: a `compute_slowdown` above 1 stretches every model call by that factor, holding the
compute thread the whole time, as a slower device would (`Partition.run_edge`); `inferedge run`
uses it to serve on the edge speed its DeviceProfile declares.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Final, TypeVar

import numpy as np
from pydantic import ValidationError

from inferedge.core.errors import one_line
from inferedge.core.roles import Role
from inferedge.runtime.cloud import CloudDataplane
from inferedge.runtime.compute import compute_thread, ms
from inferedge.runtime.errors import CloudBusy, NotReady, OffloadFailed, PlanMismatch
from inferedge.runtime.messages import Answer, Offload, OffloadContext
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.partition import (
    EdgeOutcome,
    Partition,
    PartitionError,
    RowResult,
)
from inferedge.runtime.policy import degraded_choice
from inferedge.runtime.served import Served

__all__ = ["INVALID", "NO_PREDICTION", "CloudDataplane", "EdgeDataplane"]

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    if isinstance(exc, CloudBusy):
        return "cloud_busy"
    if isinstance(exc, OSError):
        return "unreachable"
    # A reply that does not parse as a CloudAnswer (a NaN travels as null) is invalid too.
    if isinstance(exc, _InvalidCloudAnswer | ValidationError):
        return "invalid_answer"
    return "error"


INVALID: Final = "invalid_answer"
NO_PREDICTION: Final = -1
"""The prediction of a row no classifier could answer with finite numbers."""


def _finite(result: RowResult) -> bool:
    return math.isfinite(result.confidence)


def _no_answer(exit_index: int, cut_index: int) -> RowResult:
    return RowResult(NO_PREDICTION, 0.0, exit_index, cut_index)


@dataclass(frozen=True)
class _Source:
    """Where answers for some rows of a request were made, and how."""

    location: Role
    timings: dict[str, float]
    reason: str | None = None


_EDGE = _Source("edge", {})
_EDGE_INVALID = _Source("edge", {}, INVALID)
Placed = tuple[RowResult, _Source]


class EdgeDataplane(Served):
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
        answer_at: int | None = None,
    ) -> None:
        if not offload_timeout_s > 0:
            raise PartitionError(f"offload_timeout_s must be > 0, got {offload_timeout_s!r}")
        if partition is not None and answer_at is not None:
            partition.check_truncation(answer_at)
        super().__init__(partition, threshold, metrics, compute_slowdown)
        self.answer_at = answer_at
        """Serve the model truncated at its k-th edge exit (`Partition.run_edge`)."""
        self._offload = offload
        self._timeout_s = float(offload_timeout_s)
        self._last_failure: str | None = None
        self._executor = compute_thread("inferedge-edge")
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
            partial(
                partition.run_edge,
                batch,
                threshold,
                slowdown=self.compute_slowdown,
                answer_at=self.answer_at,
            ),
        )
        edge_ms = ms(time.perf_counter() - started)
        placed = [
            (row, *self._edge_answer(result))
            for row, result in enumerate(outcome.answers)
            if result is not None
        ]
        if outcome.pending:
            offloaded = await self._offload_pending(partition, threshold, outcome)
            placed += [
                (row, result, source)
                for row, (result, source) in zip(outcome.pending, offloaded, strict=True)
            ]
        total_ms = ms(time.perf_counter() - started)
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
            if self.unmet is not None:
                self.metrics.objective_unmet.labels(reason=self.unmet).inc()
        return [a for a in answers if a is not None]

    async def compute(self, call: Callable[[], T]) -> T:
        """`call()` on this edge's compute thread, after what is queued there: another way in
        to the same board (a pipeline's stage, `runtime.stage_member`)."""
        if self._closed:
            raise NotReady("the edge dataplane is shut down")
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def aclose(self) -> None:
        """Refuse new requests and release the compute thread once running ones are done."""
        self._closed = True
        self._executor.shutdown(wait=False)

    def _edge_answer(self, result: RowResult) -> Placed:
        """An edge exit's answer, or no answer when it is not a finite number."""
        if _finite(result):
            return result, _EDGE
        self.metrics.degraded.labels(reason=INVALID).inc()
        return _no_answer(result.exit_index, result.cut_index), _EDGE_INVALID

    async def _offload_pending(
        self, partition: Partition, threshold: float, outcome: EdgeOutcome
    ) -> list[Placed]:
        count = len(outcome.pending)
        context = OffloadContext(
            plan_hash=partition.plan_hash,
            threshold=threshold,
            timeout_s=self._timeout_s,
            point=partition.point,
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
            return self._degrade(partition, outcome, exc, ms(time.perf_counter() - sent))
        round_trip_ms = ms(time.perf_counter() - sent)
        if self._last_failure is not None:
            log.info("the cloud answers again (plan %s)", partition.plan_hash)
            self._last_failure = None
        source = _Source("cloud", {
            "transfer_ms": max(round_trip_ms - cloud.cloud_ms, 0.0),
            "cloud_ms": cloud.cloud_ms,
        })  # fmt: skip
        answered: list[Placed] = [(row, source) for row in cloud.rows]
        # Rows the cloud answered with a non-finite number fall back one by one: the input
        # made them so, the cloud itself is fine and its other rows stand.
        invalid = [i for i, row in enumerate(cloud.rows) if not _finite(row)]
        fallback = self._fallback(
            partition,
            outcome,
            invalid,
            reason=INVALID,
            offload_ms=round_trip_ms,
            cloud_rows=cloud.rows,
        )
        for i, placed in zip(invalid, fallback, strict=True):
            answered[i] = placed
        return answered

    def _degrade(
        self, partition: Partition, outcome: EdgeOutcome, exc: Exception, offload_ms: float
    ) -> list[Placed]:
        reason = _degrade_reason(exc)
        count = len(outcome.pending)
        if reason == "plan_mismatch":
            self.metrics.plan_mismatch.inc()
        if reason != self._last_failure:
            # Logged on a change of state only: an outage must not write a line per request.
            log.warning("offload failed (%s): %s; answering from edge exits", reason, one_line(exc))
            self._last_failure = reason
        if not all(outcome.candidates):
            self.metrics.failed.labels(reason=reason).inc(count)
            raise OffloadFailed(
                f"the cloud did not answer ({reason}: {one_line(exc)}) and the edge part of "
                f"plan {partition.plan_hash} has no exit to answer instead"
            ) from exc
        return self._fallback(
            partition, outcome, range(count), reason=reason, offload_ms=offload_ms, cloud_rows=None
        )

    def _fallback(
        self,
        partition: Partition,
        outcome: EdgeOutcome,
        indices: Sequence[int],
        *,
        reason: str,
        offload_ms: float,
        cloud_rows: Sequence[RowResult] | None,
    ) -> list[Placed]:
        """Answers for pending rows `indices` from their most confident finite edge exit.

        A row with no finite exit (or none at all: only when the cloud answered it, as
        `cloud_rows[i]`, with a non-finite number) gets no answer, with reason invalid_answer.
        """
        placed: list[Placed] = []
        for i in indices:
            candidates = outcome.candidates[i]
            choice = degraded_choice([c for c in candidates if math.isfinite(c.confidence)])
            if choice is not None:
                cut = partition.exit_cut(choice.exit_index)
                result = RowResult(choice.prediction, choice.confidence, choice.exit_index, cut)
                placed.append((result, _Source("edge", {"offload_ms": offload_ms}, reason)))
                self.metrics.degraded.labels(reason=reason).inc()
                continue
            if candidates:
                deepest = max(c.exit_index for c in candidates)
                result = _no_answer(deepest, partition.exit_cut(deepest))
            else:
                assert cloud_rows is not None  # a failed offload without exits raised before
                result = _no_answer(cloud_rows[i].exit_index, cloud_rows[i].cut_index)
            placed.append((result, _Source("edge", {"offload_ms": offload_ms}, INVALID)))
            self.metrics.degraded.labels(reason=INVALID).inc()
        return placed
