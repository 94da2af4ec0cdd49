"""The cloud dataplane: continues offloaded activations from the split, batching them.

An offload is admitted only while the samples accepted and not answered stay within
`BatchPolicy.max_queued_samples` (an idle cloud takes anything); past it, `CloudBusy` at once,
so the edge degrades now rather than after its timeout. An offload larger than
`max_batch_size` runs in batch-sized pieces, one after another, each batched with whatever
else is queued, so no single offload holds the compute thread for more than one batch. An
offload with a deadline that passes before a piece runs is dropped with DeadlineExpired.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Final

import numpy as np

from inferedge.core.operating_space import OperatingPoint
from inferedge.core.space import SpaceError
from inferedge.runtime.batching import Batcher
from inferedge.runtime.compute import ms
from inferedge.runtime.errors import CloudBusy, NotReady, PlanMismatch
from inferedge.runtime.messages import CloudAnswer
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.partition import Partition, PartitionError, RowResult
from inferedge.runtime.policy import BatchPolicy, admit, split_rows, validate_threshold
from inferedge.runtime.served import Served

# Views are cheap (they share the loaded files), but an edge could name many points in turn.
_MAX_VIEWS: Final = 256


class CloudDataplane(Served):
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
        self._batcher = Batcher(batch_policy, self.metrics, self.compute_slowdown)
        self._previous: Partition | None = None
        self._accepted = 0
        self._views: dict[tuple[str, OperatingPoint], Partition] = {}

    @property
    def plan_hashes(self) -> tuple[str, ...]:
        """The plans this cloud answers offloads for: the served one, then the one before it."""
        return tuple(p.plan_hash for p in (self._partition, self._previous) if p is not None)

    def swap(self, partition: Partition, threshold: float | None = None) -> None:
        """Serve `partition` from now on, still answering offloads of the plan served until now.

        Edges swap after the cloud (a reload reaches the cloud first), so for a while they still
        send offloads of the old plan; keeping it answers those instead of refusing them.
        """
        old = self._partition
        super().swap(partition, threshold)
        if old is not None and old.plan_hash != partition.plan_hash:
            self._previous = old
        kept = self.plan_hashes
        self._views = {k: v for k, v in self._views.items() if k[0] in kept}

    @property
    def batch_policy(self) -> BatchPolicy:
        """How concurrent offloads are grouped."""
        return self._batcher.policy

    @property
    def queued_samples(self) -> int:
        """Samples accepted and waiting for their batch."""
        return self._batcher.queued_samples

    @property
    def accepted_samples(self) -> int:
        """Samples admitted and not answered yet (queued, running, or later pieces)."""
        return self._accepted

    async def handle(
        self,
        activation: np.ndarray,
        plan_hash: str,
        threshold: float | None = None,
        deadline: float | None = None,
        point: OperatingPoint | None = None,
    ) -> CloudAnswer:
        """Answer one offload: split activations (one sample or a batch) of plan `plan_hash`.

        `threshold` is the c_thr to test cloud exits against (the edge's, usually); None uses
        this dataplane's own. `point` is the operating point the edge split at, which an
        operating space's offloads must name (its threshold is `threshold`). `deadline`
        (`time.monotonic()`) is when the edge stops waiting.
        Raises PlanMismatch when `plan_hash` is not the served plan, NotReady before a
        partition is loaded, PartitionError for a malformed activation, CloudBusy when the
        admission bound is reached, DeadlineExpired when the deadline passes before compute.
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
        partition = self._view(found[0], point)
        batch = partition.batch(np.asarray(activation))
        c_thr = self._threshold if threshold is None else validate_threshold(threshold)
        rows = int(batch.shape[0])
        bound = self.batch_policy.max_queued_samples
        if not admit(self._accepted, rows, bound):
            self.metrics.shed.labels(reason="cloud_busy").inc()
            raise CloudBusy(
                f"the cloud holds {self._accepted} samples; {rows} more would pass its bound "
                f"of {bound} (--max-queued-samples); retry later"
            )
        self.metrics.activation_bytes.observe(batch.nbytes)
        self._accepted += rows
        try:
            return await self._run_pieces(partition, batch, c_thr, deadline)
        finally:
            self._accepted -= rows

    def _view(self, partition: Partition, point: OperatingPoint | None) -> Partition:
        """The partition that continues offloads split at `point`: one per point, kept, so
        offloads of one point batch together and never with another's. A plain set's offloads
        name no point, but for a baseline's (`core.space.check_baseline`)."""
        if point is None and partition.manifest.space is None:
            return partition
        if point is None:
            raise PartitionError(
                f"plan {partition.plan_hash} is an operating space: the offload must name its "
                "operating point"
            )
        key = (partition.plan_hash, replace(point, threshold=0.0))
        view = self._views.get(key)
        if view is None:
            try:
                view = partition.at(key[1])
            except SpaceError as exc:
                raise PartitionError(f"offload's operating point: {exc}") from None
            if len(self._views) >= _MAX_VIEWS:
                self._views.pop(next(iter(self._views)))
            self._views[key] = view
        return view

    async def _run_pieces(
        self, partition: Partition, batch: np.ndarray, c_thr: float, deadline: float | None
    ) -> CloudAnswer:
        pieces = split_rows(int(batch.shape[0]), self.batch_policy.max_batch_size)
        if len(pieces) == 1:
            return await self._batcher.submit(partition, batch, [c_thr] * batch.shape[0], deadline)
        self.metrics.split_offloads.inc()
        started = time.monotonic()
        rows: list[RowResult] = []
        compute_ms, batch_size = 0.0, 1
        # One piece at a time: offloads arriving meanwhile queue behind one piece, not all.
        for start, stop in pieces:
            answer = await self._batcher.submit(
                partition, batch[start:stop], [c_thr] * (stop - start), deadline
            )
            rows += answer.rows
            compute_ms += answer.compute_ms
            batch_size = max(batch_size, answer.batch_size)
        total_ms = ms(time.monotonic() - started)
        return CloudAnswer(
            plan_hash=partition.plan_hash,
            rows=tuple(rows),
            queue_ms=max(total_ms - compute_ms, 0.0),
            compute_ms=compute_ms,
            batch_size=batch_size,
            max_batch_size=self.batch_policy.max_batch_size,
        )

    async def aclose(self) -> None:
        """Stop batching; offloads still waiting fail with NotReady."""
        await self._batcher.close()
