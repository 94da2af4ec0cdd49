"""The edge's offload coalescer: concurrent offloads share messages, each caller gets its rows.

The cloud side here is a coroutine that answers each row with its own first value, and holds
its answers until the test releases them, so the test decides what is in flight.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from inferedge.runtime.coalescing import Coalescer
from inferedge.runtime.messages import CloudAnswer, OffloadContext
from inferedge.runtime.partition import RowResult

CONTEXT = OffloadContext(plan_hash="p1", threshold=0.5, timeout_s=2.0)


class Cloud:
    """Records each message it is sent; answers once `release` is set (or at once)."""

    def __init__(
        self, *, hold: bool = False, fail: bool = False, max_batch_size: int | None = None
    ) -> None:
        self.messages: list[tuple[np.ndarray, OffloadContext]] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.fail = fail
        self.max_batch_size = max_batch_size

    async def __call__(self, activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        self.messages.append((activation, context))
        await self.release.wait()
        if self.fail:
            raise ConnectionError("the cloud went away")
        rows = tuple(RowResult(int(row[0]), 1.0, 0, 1) for row in activation)
        return CloudAnswer(
            plan_hash=context.plan_hash,
            rows=rows,
            queue_ms=0,
            compute_ms=1,
            batch_size=len(rows),
            max_batch_size=self.max_batch_size,
        )

    def rows(self) -> list[int]:
        return [len(activation) for activation, _ in self.messages]


def sample(value: int, rows: int = 1) -> np.ndarray:
    return np.full((rows, 4), value, dtype=np.float32)


async def settle() -> None:
    """Yield to the loop until every ready callback (the coalescer's zero linger too) ran."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_an_offload_with_a_free_slot_leaves_at_once_as_its_own_message() -> None:
    async def run() -> tuple[list[int], list[int]]:
        cloud = Cloud()
        coalescer = Coalescer(cloud, linger_ms=0)
        answer = await coalescer(sample(7, rows=2), CONTEXT)
        return cloud.rows(), [r.prediction for r in answer.rows]

    assert asyncio.run(run()) == ([2], [7, 7])


def test_offloads_that_arrive_while_the_slots_are_busy_leave_together() -> None:
    async def run() -> tuple[list[int], list[list[int]]]:
        cloud = Cloud(hold=True)
        coalescer = Coalescer(cloud, max_in_flight=2, linger_ms=0)
        calls = [asyncio.create_task(coalescer(sample(i), CONTEXT)) for i in range(12)]
        await settle()
        assert cloud.rows() == [1, 1]  # two in flight, ten waiting
        cloud.release.set()
        answers = await asyncio.gather(*calls)
        return cloud.rows(), [[r.prediction for r in a.rows] for a in answers]

    rows, predictions = asyncio.run(run())
    assert rows == [1, 1, 10]
    assert predictions == [[i] for i in range(12)]  # every caller gets its own row


def test_groups_keep_to_one_plan_and_threshold_and_to_max_rows() -> None:
    other = CONTEXT.model_copy(update={"threshold": 0.9})

    async def run() -> list[tuple[int, float]]:
        cloud = Cloud(hold=True)
        coalescer = Coalescer(cloud, max_in_flight=1, max_rows=3, linger_ms=0)
        first = asyncio.create_task(coalescer(sample(0), CONTEXT))
        await settle()
        rest = [
            asyncio.create_task(coalescer(sample(i), other if i % 2 else CONTEXT))
            for i in range(1, 9)
        ]
        await settle()
        cloud.release.set()
        await asyncio.gather(first, *rest)
        return [(len(a), c.threshold) for a, c in cloud.messages]

    # The oldest waiting offload (threshold 0.9) picks each group; others wait their turn.
    assert asyncio.run(run()) == [(1, 0.5), (3, 0.9), (3, 0.5), (1, 0.9), (1, 0.5)]


def test_messages_keep_within_the_batch_limit_the_cloud_states() -> None:
    """A message larger than the cloud's batch would run in pieces and be answered after the
    last, leaving the cloud idle meanwhile; once an answer states the limit, groups keep to it."""

    async def run() -> tuple[list[int], list[list[int]]]:
        cloud = Cloud(hold=True, max_batch_size=4)
        coalescer = Coalescer(cloud, max_in_flight=2, linger_ms=0)
        calls = [asyncio.create_task(coalescer(sample(i), CONTEXT)) for i in range(12)]
        await settle()
        cloud.release.set()
        answers = await asyncio.gather(*calls)
        # A larger offload still leaves whole, alone: the cloud splits it itself.
        big = await coalescer(sample(99, rows=6), CONTEXT)
        return cloud.rows(), [[r.prediction for r in a.rows] for a in [*answers, big]]

    rows, predictions = asyncio.run(run())
    # Two single offloads in flight before any answer, then the ten waiting in groups of <= 4.
    assert rows == [1, 1, 4, 4, 2, 6]
    assert predictions == [[i] for i in range(12)] + [[99] * 6]


def test_a_failed_message_fails_every_caller_of_its_group() -> None:
    async def run() -> list[BaseException | CloudAnswer]:
        cloud = Cloud(hold=True, fail=True)
        coalescer = Coalescer(cloud, max_in_flight=1, linger_ms=0)
        calls = [asyncio.create_task(coalescer(sample(i), CONTEXT)) for i in range(3)]
        await settle()
        cloud.release.set()
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(run())
    assert all(isinstance(r, ConnectionError) for r in results)


def test_a_caller_that_gives_up_leaves_its_group_to_the_others() -> None:
    async def run() -> tuple[bool, list[int]]:
        cloud = Cloud(hold=True)
        coalescer = Coalescer(cloud, max_in_flight=1, linger_ms=0)
        first = asyncio.create_task(coalescer(sample(0), CONTEXT))
        await settle()
        impatient = asyncio.create_task(asyncio.wait_for(coalescer(sample(1), CONTEXT), 0.01))
        patient = asyncio.create_task(coalescer(sample(2), CONTEXT))
        with pytest.raises(TimeoutError):
            await impatient
        cloud.release.set()
        await first
        answer = await patient
        return impatient.done(), [r.prediction for r in answer.rows]

    assert asyncio.run(run()) == (True, [2])


def test_a_message_carries_the_least_budget_left_in_its_group() -> None:
    short = CONTEXT.model_copy(update={"timeout_s": 0.5})

    async def run() -> float:
        cloud = Cloud(hold=True)
        coalescer = Coalescer(cloud, max_in_flight=1, linger_ms=0)
        first = asyncio.create_task(coalescer(sample(0), CONTEXT))
        await settle()
        group = [
            asyncio.create_task(coalescer(sample(i), c)) for i, c in ((1, CONTEXT), (2, short))
        ]
        await settle()
        cloud.release.set()
        await asyncio.gather(first, *group)
        return cloud.messages[1][1].timeout_s

    assert asyncio.run(run()) < 0.5


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Coalescer(Cloud(), max_in_flight=0)
