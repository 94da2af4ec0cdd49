"""One model call on an emulated device that is `slowdown` times slower than this host.

The call runs at this host's speed and is timed; the thread is then held for (slowdown - 1)
times as long, yielding the GIL so an event loop in the same process still serves other
requests. The edge server and the profiler's served pass both call through here, so an
emulated profile and an emulated server stretch time, and disturb the host, the same way.

How the thread is held is one setting of the process (`set_hold`): by default it spins
(yielding), busy as a loaded board is, which is how profiles are measured. A server that is one
of several emulated boards sharing fewer host cores (the pools of a local site) sleeps instead,
since spinning boards would compete for cores that real boards do not share; and it times the
call by the CPU time its thread spent, not the wall time: a neighbour's load on the host would
otherwise stretch the call, and the hold multiplies that stretch by the slowdown (a board
emulated 64 times slower would lose half its speed to one busy core it does not have). On an
idle host, and with one compute thread (as `inferedge run` caps its servers), the two clocks
agree. A sleeping thread also loses its caches to whatever runs meanwhile, so the same call's
CPU time still varied by half between calls and rose with the host's load (a Nano replica
served a third slower inside a busy local site than alone); a sleeping board is therefore held
for the fastest CPU time this process has seen for the same call (callable and input shape)
times the slowdown: its speed is its own, whatever this host does around it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar, get_args

Hold = Literal["spin", "sleep"]
HOLDS: tuple[Hold, ...] = get_args(Hold)

_hold: list[Hold] = ["spin"]


def set_hold(hold: Hold) -> None:
    """How this process holds an emulated call's thread from now on: spin or sleep."""
    if hold not in HOLDS:
        raise ValueError(f"hold: expected one of {', '.join(HOLDS)}, got {hold!r}")
    _hold[0] = hold


_In = TypeVar("_In")
_Out = TypeVar("_Out")


# Per callable (kept alive here, so its id is not reused), per input shape: the fastest CPU
# seconds a sleeping hold has seen.
_fastest: dict[int, tuple[object, dict[object, float]]] = {}


def _fastest_cpu(fn: object, x: object, seconds: float) -> float:
    """The fastest CPU time of `fn` on inputs shaped like `x`, this call's included."""
    _, by_shape = _fastest.setdefault(id(fn), (fn, {}))
    shape = getattr(x, "shape", None)
    best = min(seconds, by_shape.get(shape, seconds))
    by_shape[shape] = best
    return best


def slowed_call(fn: Callable[[_In], _Out], x: _In, slowdown: float) -> tuple[_Out, float]:
    """`fn(x)` and the emulated seconds it took (measured seconds times `slowdown`)."""
    sleeping = _hold[0] == "sleep"
    started, cpu = time.perf_counter(), time.thread_time()
    out = fn(x)
    if sleeping:
        elapsed = _fastest_cpu(fn, x, time.thread_time() - cpu)
    else:
        elapsed = time.perf_counter() - started
    if slowdown > 1.0:
        until = started + elapsed * slowdown
        if sleeping:
            time.sleep(max(until - time.perf_counter(), 0.0))
        while time.perf_counter() < until:
            time.sleep(0)
    return out, elapsed * slowdown
