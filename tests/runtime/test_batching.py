"""The cloud's dynamic batcher on its own: batch formation, waiting, results, errors, shutdown.

Most tests run it on `RecordingPart`, a stand-in cloud part whose answers say which row they
came from and which threshold they were tested against; one runs it on a real partition.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np
import pytest
import pytest_asyncio

from inferedge.runtime.batching import Batcher
from inferedge.runtime.errors import NotReady
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.partition import Partition, RowResult
from inferedge.runtime.policy import BatchPolicy
from tests.runtime.helpers import WAIT_LIMIT_S, eventually

NEVER = 2.0  # a threshold no confidence reaches: early exits are off


class RecordingPart:
    """A cloud part answering row r with prediction r[0] and the row's threshold as confidence.

    It records the size of every batch it runs and the slowdown it was given; `gate`, when set,
    holds each batch until the test releases it, and `error`, when set, fails every batch.
    """

    def __init__(self, plan_hash: str = "a" * 16) -> None:
        self.plan_hash = plan_hash
        self.batches: list[int] = []
        self.slowdowns: list[float] = []
        self.gate: threading.Event | None = None
        self.error: Exception | None = None

    def run_cloud(
        self, x: np.ndarray, thresholds: Sequence[float], *, slowdown: float = 1.0
    ) -> list[RowResult]:
        """Answer each row of `x` (see the class docstring)."""
        self.batches.append(int(x.shape[0]))
        self.slowdowns.append(slowdown)
        # Bounded, so a failing test cannot leave the compute thread blocked forever.
        if self.gate is not None and not self.gate.wait(WAIT_LIMIT_S):
            raise TimeoutError("the test never released the batch")
        if self.error is not None:
            raise self.error
        return [
            RowResult(int(row[0]), threshold, 0, 1)
            for row, threshold in zip(x, thresholds, strict=True)
        ]


def rows(start: int, count: int = 1) -> np.ndarray:
    """`count` one-value rows numbered from `start`, so each answer names its row."""
    return np.arange(start, start + count, dtype=np.float32).reshape(count, 1)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """The current value of one series (0 when it was never touched)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


MakeBatcher = Callable[..., Batcher]


@pytest_asyncio.fixture
async def make_batcher() -> AsyncIterator[MakeBatcher]:
    """`make_batcher(max_batch_size, max_wait_ms, *, slowdown, metrics)`: batchers closed after
    the test."""
    made: list[Batcher] = []

    def make(
        max_batch_size: int, max_wait_ms: float, *, slowdown: float = 1.0,
        metrics: Metrics | None = None,
    ) -> Batcher:  # fmt: skip
        policy = BatchPolicy(max_batch_size, max_wait_ms)
        made.append(Batcher(policy, metrics or Metrics(), slowdown))
        return made[-1]

    yield make
    for batcher in made:
        await batcher.close()


@pytest.mark.asyncio
async def test_concurrent_offloads_fill_batches_up_to_the_limit(
    make_batcher: MakeBatcher,
) -> None:
    part = RecordingPart()
    metrics = Metrics()
    batcher = make_batcher(8, 1000.0, slowdown=3.0, metrics=metrics)
    answers = await asyncio.gather(*(batcher.submit(part, rows(i), [NEVER]) for i in range(16)))
    # All sixteen arrive before the worker runs: two full batches, without waiting the 1 s.
    assert part.batches == [8, 8]
    assert [(a.batch_size, a.max_batch_size) for a in answers] == [(8, 8)] * 16
    assert all(a.queue_ms < 1000.0 for a in answers)
    assert [a.rows[0].prediction for a in answers] == list(range(16))
    assert {a.plan_hash for a in answers} == {part.plan_hash}
    assert part.slowdowns == [3.0, 3.0]
    assert value(metrics, "inferedge_batch_size_count") == 2
    assert value(metrics, "inferedge_queue_seconds_count") == 16
    assert value(metrics, "inferedge_requests_total", location="cloud", exit="0") == 16


@pytest.mark.asyncio
async def test_each_request_gets_its_own_rows_and_thresholds(make_batcher: MakeBatcher) -> None:
    part = RecordingPart()
    batcher = make_batcher(8, 20.0)
    one, two, three = await asyncio.gather(
        batcher.submit(part, rows(0, 1), [0.1]),
        batcher.submit(part, rows(1, 2), [0.2, 0.3]),
        batcher.submit(part, rows(3, 3), [0.4] * 3),
    )
    assert part.batches == [6]
    assert {one.batch_size, two.batch_size, three.batch_size} == {6}
    assert [(r.prediction, r.confidence) for r in one.rows] == [(0, 0.1)]
    assert [(r.prediction, r.confidence) for r in two.rows] == [(1, 0.2), (2, 0.3)]
    assert [(r.prediction, r.confidence) for r in three.rows] == [(3, 0.4), (4, 0.4), (5, 0.4)]


@pytest.mark.asyncio
async def test_batched_answers_are_the_unbatched_ones(
    make_batcher: MakeBatcher, cloud_part: Partition, edge_part: Partition,
    images: Callable[..., np.ndarray],
) -> None:  # fmt: skip
    activation = edge_part.run_edge(images(16), NEVER).activation
    batcher = make_batcher(8, 1000.0)
    answers = await asyncio.gather(
        *(batcher.submit(cloud_part, activation[i : i + 1], [NEVER]) for i in range(16))
    )
    assert [(a.batch_size, a.max_batch_size) for a in answers] == [(8, 8)] * 16
    assert [a.rows[0] for a in answers] == cloud_part.run_cloud(activation, [NEVER] * 16)


@pytest.mark.asyncio
async def test_a_lone_offload_waits_max_wait_then_runs(make_batcher: MakeBatcher) -> None:
    part = RecordingPart()
    batcher = make_batcher(8, 40.0)
    answer = await asyncio.wait_for(batcher.submit(part, rows(0), [NEVER]), 5.0)
    assert answer.batch_size == 1
    assert 40.0 <= answer.queue_ms < 2000.0


@pytest.mark.asyncio
async def test_requests_are_never_split_and_batches_stay_within_the_limit(
    make_batcher: MakeBatcher,
) -> None:
    part = RecordingPart()
    batcher = make_batcher(4, 20.0)
    answers = await asyncio.gather(
        *(batcher.submit(part, rows(3 * i, 3), [NEVER] * 3) for i in range(3))
    )
    assert [len(a.rows) for a in answers] == [3, 3, 3]
    assert [a.batch_size for a in answers] == [3, 3, 3]
    # A request larger than a batch is not split either: it runs alone.
    big = await asyncio.wait_for(batcher.submit(part, rows(0, 6), [NEVER] * 6), 5.0)
    assert big.batch_size == 6
    assert part.batches == [3, 3, 3, 6]


@pytest.mark.asyncio
async def test_a_batch_never_mixes_parts(make_batcher: MakeBatcher) -> None:
    old, new = RecordingPart("a" * 16), RecordingPart("b" * 16)
    batcher = make_batcher(8, 20.0)
    answers = await asyncio.gather(
        batcher.submit(old, rows(0), [NEVER]),
        batcher.submit(old, rows(1), [NEVER]),
        batcher.submit(new, rows(2), [NEVER]),
        batcher.submit(old, rows(3), [NEVER]),
    )
    assert [(a.plan_hash[0], a.batch_size) for a in answers] == [
        ("a", 2), ("a", 2), ("b", 1), ("a", 1)
    ]  # fmt: skip
    assert (old.batches, new.batches) == ([2, 1], [1])


@pytest.mark.asyncio
async def test_offloads_arriving_during_a_batch_form_the_next(make_batcher: MakeBatcher) -> None:
    part = RecordingPart()
    part.gate = threading.Event()
    batcher = make_batcher(8, 0.0)
    first = asyncio.create_task(batcher.submit(part, rows(0), [NEVER]))
    await eventually(lambda: part.batches == [1], "the first batch to start")
    later = [asyncio.create_task(batcher.submit(part, rows(i), [NEVER])) for i in (1, 2, 3)]
    await eventually(lambda: batcher.queued_samples == 3, "three offloads to queue")
    part.gate.set()
    answers = await asyncio.wait_for(asyncio.gather(first, *later), 5.0)
    # One batch at a time: the three that came while the first ran ride together.
    assert part.batches == [1, 3]
    assert [a.batch_size for a in answers] == [1, 3, 3, 3]
    assert [a.rows[0].prediction for a in answers] == [0, 1, 2, 3]


@pytest.mark.asyncio
async def test_a_caller_that_gives_up_leaves_the_queue(make_batcher: MakeBatcher) -> None:
    part = RecordingPart()
    batcher = make_batcher(8, 100.0)
    gone = asyncio.create_task(batcher.submit(part, rows(0), [NEVER]))
    staying = asyncio.create_task(batcher.submit(part, rows(1), [NEVER]))
    await eventually(lambda: batcher.queued_samples == 2, "two offloads to queue")
    gone.cancel()
    answer = await asyncio.wait_for(staying, 5.0)
    assert part.batches == [1]  # the cancelled offload's row was not computed
    assert answer.batch_size == 1
    assert answer.rows[0].prediction == 1


@pytest.mark.asyncio
async def test_a_failing_batch_fails_each_of_its_requests(make_batcher: MakeBatcher) -> None:
    part = RecordingPart()
    part.error = RuntimeError("out of memory")
    batcher = make_batcher(8, 20.0)
    results = await asyncio.wait_for(
        asyncio.gather(
            *(batcher.submit(part, rows(i), [NEVER]) for i in range(3)), return_exceptions=True
        ),
        5.0,
    )
    assert part.batches == [3]
    assert all(r is part.error for r in results)
    part.error = None
    healthy = await asyncio.wait_for(batcher.submit(part, rows(0, 3), [NEVER] * 3), 5.0)
    assert len(healthy.rows) == 3  # the batcher lives on


@pytest.mark.asyncio
async def test_closing_fails_waiting_offloads_and_refuses_new_ones(
    make_batcher: MakeBatcher,
) -> None:
    part = RecordingPart()
    batcher = make_batcher(8, 60_000.0)
    waiting = asyncio.create_task(batcher.submit(part, rows(0), [NEVER]))
    await eventually(lambda: batcher.queued_samples == 1, "the offload to queue")
    await batcher.close()
    with pytest.raises(NotReady, match="shutting down"):
        await asyncio.wait_for(waiting, 5.0)
    with pytest.raises(NotReady, match="shut down"):
        await batcher.submit(part, rows(0), [NEVER])
    assert part.batches == []
