"""One model call on an emulated device that is `slowdown` times slower than this host.

The call runs at this host's speed and is timed; the thread is then held for (slowdown - 1)
times as long, yielding the GIL so an event loop in the same process still serves other
requests. The edge server and the profiler's served pass both call through here, so an
emulated profile and an emulated server stretch time, and disturb the host, the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

_In = TypeVar("_In")
_Out = TypeVar("_Out")


def slowed_call(fn: Callable[[_In], _Out], x: _In, slowdown: float) -> tuple[_Out, float]:
    """`fn(x)` and the emulated seconds it took (measured seconds times `slowdown`)."""
    started = time.perf_counter()
    out = fn(x)
    elapsed = time.perf_counter() - started
    if slowdown > 1.0:
        until = started + elapsed * slowdown
        while time.perf_counter() < until:
            time.sleep(0)
    return out, elapsed * slowdown
