"""The emulated device's model call: stretched by the slowdown, reported as stretched."""

from __future__ import annotations

import time
from collections.abc import Iterator

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


def test_an_unknown_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="hold: expected one of spin, sleep"):
        set_hold("nap")  # type: ignore[arg-type]
