"""What each segment and exit head of a served partition measured to cost, as it serves.

The planner's profile times the model's segments as eager modules, one at a time; the served
path calls the exported files, through the serving code, interleaved with exit tests. The two
differ (on `make demo`'s edge by 2 to 3x, most of it fixed cost per call), so an edge that
chooses operating points from the profile alone chooses from the wrong times. Every model call
of a single-row batch is recorded here (emulated slowdown included, as the profile's are), and
the adapter corrects the space's times from them (`core.space.corrected`).

Averages are exponentially weighted, so they follow a device that warms up or throttles.
Batches of more than one row are not recorded: the profile the times correct is of one row.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Final, Literal

from inferedge.core.operating_space import OperatingPoint

StepKind = Literal["segment", "head", "request"]
StepKey = tuple[StepKind, int, int]
"""('segment', start cut, end cut), ('head', cut, cut), or ('request', 0, 0): a single-row
request's time in the edge server outside its model calls and its offload (reading and
decoding it, exit tests, copies, encoding the answer)."""

REQUEST: Final[StepKey] = ("request", 0, 0)

# Weight of the newest call: about the last 20 calls count.
ALPHA: Final = 0.1


class StepTimings:
    """Exponentially weighted mean milliseconds per step, shared by a space's partitions."""

    def __init__(self, alpha: float = ALPHA) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha: expected 0 < alpha <= 1, got {alpha}")
        self._alpha = alpha
        self._mean: dict[StepKey, float] = {}
        self._count: dict[StepKey, int] = {}
        self._lock = threading.Lock()  # written by the compute thread, read by the event loop

    def record(self, key: StepKey, ms: float) -> None:
        """Count one call of `key` that took `ms`."""
        with self._lock:
            before = self._mean.get(key)
            self._mean[key] = ms if before is None else before + self._alpha * (ms - before)
            self._count[key] = self._count.get(key, 0) + 1

    def snapshot(self, min_calls: int = 1) -> dict[StepKey, float]:
        """The mean of every step called at least `min_calls` times."""
        with self._lock:
            return {k: v for k, v in self._mean.items() if self._count[k] >= min_calls}


REQUESTS_KEPT: Final = 200
"""Single-row requests `RequestTimes` keeps: about 5 s of the step trace's closed loop."""


class RequestTimes:
    """The latest single-row requests as served: the point, the exit that answered (path order)
    and the milliseconds spent in this server outside the link. The tail of the map's paths is
    measured from them (`runtime.adaptation`)."""

    def __init__(self, size: int = REQUESTS_KEPT) -> None:
        self._kept: deque[tuple[OperatingPoint | None, int, float]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def record(self, point: OperatingPoint | None, exit_index: int, ms: float) -> None:
        """Count one request of `point` answered at `exit_index` after `ms`."""
        with self._lock:
            self._kept.append((point, exit_index, ms))

    def snapshot(self) -> list[tuple[OperatingPoint | None, int, float]]:
        """(point, exit index, ms) of every kept request, oldest first."""
        with self._lock:
            return list(self._kept)
