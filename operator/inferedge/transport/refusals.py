"""Refusals counted by reason and logged at most once per reason per interval.

Lives in `transport` (the lowest layer that refuses messages) so the transport's services and
the runtime's HTTP server share one rate limiter; the runtime imports it from here and exports
the transport's counts as metrics (transport may not import the runtime).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

_default = logging.getLogger("inferedge.runtime.http")


class RateLimitedLog:
    """One warning per reason per `interval_s`; the next one says how many were left out.

    `what` starts every line (`refused (<reason>): <message>`), so a flood of bad requests
    writes one line per reason every `interval_s` instead of one per request.
    """

    def __init__(
        self,
        logger: logging.Logger = _default,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        what: str = "refused",
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.what = what
        self._clock = clock
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def __call__(self, reason: str, message: str, *, exc_info: bool = False) -> bool:
        """Log `message` for `reason` unless one was logged within the interval; True if it was.

        `exc_info` adds the traceback being handled to the line that is written (for bugs).
        """
        now = self._clock()
        last = self._last.get(reason)
        if last is not None and now - last < self.interval_s:
            self._skipped[reason] = self._skipped.get(reason, 0) + 1
            return False
        self._last[reason] = now
        skipped = self._skipped.pop(reason, 0)
        more = f" ({skipped} more since the last one)" if skipped else ""
        self.logger.warning("%s (%s): %s%s", self.what, reason, message, more, exc_info=exc_info)
        return True


class Refusals:
    """Messages a transport component refused or dropped, counted by reason, logged rate-limited.

    The counts only grow; `inferedge.runtime.metrics` exposes them as
    `inferedge_bus_refused_total{reason}`.
    """

    def __init__(self, log: RateLimitedLog) -> None:
        self.log = log
        self.counts: Counter[str] = Counter()

    def __call__(
        self, reason: str, message: str, *, count: int = 1, exc_info: bool = False
    ) -> None:
        """Count `count` refusals for `reason` and log `message` unless rate-limited."""
        self.counts[reason] += count
        self.log(reason, message, exc_info=exc_info)
