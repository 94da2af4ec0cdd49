"""The emulated device's model call: stretched by the slowdown, reported as stretched."""

from __future__ import annotations

import time

import pytest

from inferedge.dnn.slowdown import slowed_call


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
