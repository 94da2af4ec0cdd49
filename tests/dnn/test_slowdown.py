"""The emulated device's model call: stretched by the slowdown, reported as stretched."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from inferedge.dnn.slowdown import set_hold, slowed_call


@pytest.mark.parametrize("slowdown", [1.0, 4.0])
def test_a_call_is_held_and_reported_at_least_slowdown_times_its_own_work(slowdown: float) -> None:
    inner: list[float] = []

    def work(n: int) -> int:
        started = time.perf_counter()
        total = sum(i * i for i in range(n))
        inner.append(time.perf_counter() - started)
        return total

    started = time.perf_counter()
    out, seconds = slowed_call(work, 20_000, slowdown)
    wall = time.perf_counter() - started
    assert out == sum(i * i for i in range(20_000))
    # Bounds that hold however busy the host is: the report covers the work times the
    # slowdown, and the caller was held at least as long as reported.
    assert seconds >= slowdown * inner[0] > 0
    assert wall >= seconds


@pytest.fixture
def sleeping() -> Iterator[None]:
    set_hold("sleep")
    yield
    set_hold("spin")


def test_a_sleeping_hold_counts_the_works_cpu_time_and_spends_none_itself(sleeping: None) -> None:
    inner: list[float] = []

    def work(n: int) -> int:
        cpu = time.thread_time()
        total = sum(i * i for i in range(n))
        inner.append(time.thread_time() - cpu)
        return total

    cpu, started = time.thread_time(), time.perf_counter()
    _, seconds = slowed_call(work, 50_000, 20.0)
    spent, wall = time.thread_time() - cpu, time.perf_counter() - started
    assert seconds >= 20.0 * inner[0] > 0
    assert wall >= seconds
    # The hold sleeps: what the call cost this thread is its work, not 20 times it.
    assert spent < 5 * inner[0] + 0.005


def test_a_sleeping_hold_takes_the_fastest_cpu_time_seen_for_the_same_call(
    sleeping: None,
) -> None:
    calls: list[int] = []

    def work(x: np.ndarray) -> int:
        # The second call on a shape does ten times the work: what a cold cache or a busy
        # neighbour does to a call's CPU time, which the board being emulated never sees.
        calls.append(x.shape[0])
        rounds = 10 if calls.count(x.shape[0]) == 2 else 1
        return sum(i * i for i in range(20_000 * rounds))

    small, large = np.zeros(1), np.zeros(2)
    _, first = slowed_call(work, small, 3.0)
    _, second = slowed_call(work, small, 3.0)
    assert second == first
    # Another input shape is another call, with its own fastest time.
    _, other = slowed_call(work, large, 3.0)
    _, again = slowed_call(work, large, 3.0)
    assert again == other
    _, third = slowed_call(work, small, 3.0)
    assert third <= first


def test_an_unknown_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="hold: expected one of spin, sleep"):
        set_hold("nap")  # type: ignore[arg-type]
