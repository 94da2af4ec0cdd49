"""How much a chunk receiver takes on: the limits, the budget of messages being reassembled,
and which stale slot a new announcement may evict (see `chunking`, step 5).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from inferedge.transport.errors import BusyError, TransportError
from inferedge.transport.headers import MiB
from inferedge.transport.refusals import RateLimitedLog, Refusals

log = logging.getLogger("inferedge.transport.chunking")


@dataclass(frozen=True)
class ReassemblyLimits:
    """How much a receiver accepts: per message, at once, and how long it waits.

    `idle_timeout_s` bounds the wait for each chunk (and, on the sending side, for each ack);
    a whole reassembly gets two `idle_timeout_s` plus its size at `min_rate_bytes_per_s` (8 Mbps,
    the slowest link the planner is given in practice), at most `transfer_timeout_s`, so a
    peer dripping chunks holds its share of the budget only about as long as its size
    justifies. A full budget evicts a slot still waiting for its first chunk after
    `evict_unstarted_after_s` (0: at once) to make room for a new announcement.
    """

    max_message_bytes: int = 256 * MiB
    max_partial_messages: int = 8
    max_buffered_bytes: int = 512 * MiB
    idle_timeout_s: float = 10.0
    transfer_timeout_s: float = 120.0
    min_rate_bytes_per_s: float = 1.0 * MiB
    evict_unstarted_after_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_partial_messages", "max_buffered_bytes"):
            if getattr(self, name) < 1:
                raise TransportError(f"{name}={getattr(self, name)}: expected at least 1")
        for name in ("idle_timeout_s", "transfer_timeout_s", "min_rate_bytes_per_s"):
            if not getattr(self, name) > 0:
                raise TransportError(f"{name}={getattr(self, name)}: expected above 0")
        if not self.evict_unstarted_after_s >= 0:
            raise TransportError(
                f"evict_unstarted_after_s={self.evict_unstarted_after_s}: expected at least 0"
            )


def transfer_deadline_s(total: int, limits: ReassemblyLimits) -> float:
    """How long a reassembly of `total` bytes may take: its size at the minimum rate, plus two
    idle timeouts (one for the first chunk, whose own timeout must fire first, and one of slack
    for the rest), capped by `transfer_timeout_s`."""
    budget = 2 * limits.idle_timeout_s + total / limits.min_rate_bytes_per_s
    return min(limits.transfer_timeout_s, budget)


def stale_slot(slots: Sequence[tuple[float, bool]], now: float, min_age_s: float) -> int | None:
    """Which reassembly slot a new announcement may evict, given each slot's (opened, started).

    The oldest slot that has not received a chunk and was opened at least `min_age_s` ago;
    None when every slot is receiving data or too young. Started slots are never chosen: an
    announcer that sends nothing must not be able to break a transfer that is under way.
    """
    stale = [
        i for i, (opened, started) in enumerate(slots) if not started and now - opened >= min_age_s
    ]
    return min(stale, key=lambda i: slots[i][0]) if stale else None


@dataclass(eq=False)
class Slot:
    """Room held for one message being reassembled."""

    size: int
    opened: float
    started: bool = False
    evicted: bool = False
    released: bool = False
    on_evict: Callable[[], object] | None = field(default=None, repr=False)
    """Called once when the slot is evicted: its receiver stops waiting for chunk 0."""


class ReassemblyBudget:
    """Counts the partial messages being reassembled and their bytes, against the limits."""

    def __init__(self, limits: ReassemblyLimits, refusals: Refusals | None = None) -> None:
        self.limits = limits
        self.refusals = refusals or Refusals(RateLimitedLog(log))
        self._slots: list[Slot] = []
        self.buffered_bytes = 0

    @property
    def partial_messages(self) -> int:
        """Messages being reassembled now."""
        return len(self._slots)

    @contextlib.contextmanager
    def reserve(self, size: int) -> Iterator[Slot]:
        """Hold room for one message of `size` bytes while it is reassembled; BusyError if full.

        A full budget first evicts stale slots (`stale_slot`); an evicted slot's `evicted`
        future is resolved, and its receiver gives up with BusyError.
        """
        limits = self.limits
        now = time.monotonic()
        while (problem := self._full(size)) is not None:
            victim = stale_slot(
                [(s.opened, s.started) for s in self._slots], now, limits.evict_unstarted_after_s
            )
            if victim is None:
                self.refusals("reassembly_busy", problem)
                raise BusyError(problem)
            self._release(self._slots[victim], evict=True)
        slot = Slot(size, now)
        self._slots.append(slot)
        self.buffered_bytes += size
        try:
            yield slot
        finally:
            if not slot.released:
                self._release(slot, evict=False)

    def _full(self, size: int) -> str | None:
        limits = self.limits
        if self.partial_messages >= limits.max_partial_messages:
            return (
                f"{self.partial_messages} chunked messages are already being reassembled "
                f"(limit {limits.max_partial_messages}); retry later"
            )
        if self.buffered_bytes + size > limits.max_buffered_bytes:
            return (
                f"{self.buffered_bytes} bytes of chunked messages are already buffered; "
                f"{size} more would pass the limit of {limits.max_buffered_bytes}; retry later"
            )
        return None

    def _release(self, slot: Slot, *, evict: bool) -> None:
        self._slots.remove(slot)
        self.buffered_bytes -= slot.size
        slot.released = True
        if evict:
            slot.evicted = True
            self.refusals("reassembly_evicted", "evicted a chunked message that sent no data")
            if slot.on_evict is not None:
                slot.on_evict()
