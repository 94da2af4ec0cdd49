"""Pure runtime decisions: when an exit answers, which exit a degraded answer uses, when a
dynamic batcher (the cloud's or the edge's) runs a batch, whether a queue admits a request,
whether an offload's deadline has passed, and how a large offload is split into pieces.

Plain functions over numbers, in the Ray Serve style: no tensors, no clocks, no event loop, so
each rule is tested exhaustively on its own and the dataplanes only feed them measurements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from inferedge.core.errors import InferedgeError


class PolicyError(InferedgeError):
    """A runtime setting (threshold, batch size, wait) is out of its range."""


class Candidate(NamedTuple):
    """What one exit said about one sample: the fallback material for a degraded answer."""

    exit_index: int
    confidence: float
    prediction: int


def validate_threshold(value: object) -> float:
    """c_thr as a float, or PolicyError naming the accepted range.

    Any finite number >= 0 is accepted. Confidences lie in [0, 1], so 0 makes the first exit
    always answer and a value above 1 turns early exits off (every sample reaches the final
    classifier), which is how an operator measures the full model without re-exporting.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"threshold must be a number, got {value!r}")
    threshold = float(value)
    if not math.isfinite(threshold) or threshold < 0.0:
        raise PolicyError(
            f"threshold must be a finite number >= 0 (above 1 disables early exits), got {value!r}"
        )
    return threshold


def should_exit(confidence: float, threshold: float) -> bool:
    """Whether an exit answers: its confidence reaches c_thr (ties answer)."""
    return confidence >= threshold


def degraded_choice(candidates: Sequence[Candidate]) -> Candidate | None:
    """The most confident edge exit, used when the cloud cannot answer; None without any.

    On a tie the deeper exit wins: it has seen more of the network, so it is the better bet.
    """
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c.confidence, c.exit_index))


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyError(f"{name} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class BatchPolicy:
    """Dynamic batching: flush when `max_batch_size` samples wait or the oldest waited
    `max_wait_ms`, whichever comes first.

    `max_queued_samples` bounds the samples the cloud has accepted and not answered yet; an
    offload past it is refused at once (`admit`), so a full cloud says so instead of letting
    requests wait out their deadline in its queue.
    """

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_queued_samples: int = 256

    def __post_init__(self) -> None:
        _positive_int("max_batch_size", self.max_batch_size)
        _positive_int("max_queued_samples", self.max_queued_samples)
        wait = self.max_wait_ms
        if (
            isinstance(wait, bool)
            or not isinstance(wait, int | float)
            or not math.isfinite(wait)
            or wait < 0
        ):
            raise PolicyError(f"max_wait_ms must be a finite number >= 0, got {wait!r}")

    def flush_now(self, queue_len: int, oldest_wait_ms: float) -> bool:
        """Whether to run a batch now, given the samples queued and the oldest one's wait."""
        if queue_len <= 0:
            return False
        return queue_len >= self.max_batch_size or oldest_wait_ms >= self.max_wait_ms

    def wait_budget_ms(self, oldest_wait_ms: float) -> float:
        """How much longer the batcher may wait for company before the oldest request is due."""
        return max(self.max_wait_ms - oldest_wait_ms, 0.0)

    def take(self, sizes: Sequence[int]) -> int:
        """How many queued requests (in FIFO order, each `sizes[i]` samples) form the next batch.

        Requests are never split, so rows of one request are answered together; the batch holds
        at most `max_batch_size` samples, except a single request larger than that, which runs
        alone rather than waiting forever.
        """
        if not sizes:
            return 0
        total, count = 0, 0
        for size in sizes:
            if count and total + size > self.max_batch_size:
                break
            total += size
            count += 1
        return count

    def due(self, sizes: Sequence[int], oldest_wait_ms: float, *, blocked: bool = False) -> int:
        """How many queued requests (in FIFO order, each `sizes[i]` samples) to run as a batch
        now, or 0 to wait for more, at most `wait_budget_ms` longer.

        A batch runs once nothing more can join it (it is full, the request after it does not
        fit, or the caller knows, by `blocked`, that whatever follows `sizes` cannot join), or
        once its oldest request has waited `max_wait_ms`.
        """
        count = self.take(sizes)
        if blocked or count < len(sizes) or self.flush_now(sum(sizes[:count]), oldest_wait_ms):
            return count
        return 0


def admit(accepted_samples: int, incoming: int, max_queued_samples: int) -> bool:
    """Whether the cloud takes an offload of `incoming` samples while `accepted_samples` are
    accepted and not answered yet (the edge's batcher asks the same of its queue).

    An idle cloud takes any offload, however large (it is split into batch-sized pieces), so
    no request is refused for its size alone; otherwise the total must stay within the bound.
    """
    return accepted_samples == 0 or accepted_samples + incoming <= max_queued_samples


def deadline_from_budget(received: float, budget_ms: float | None) -> float | None:
    """The local time by which an offload must be answered: its arrival plus the budget the
    edge sent (milliseconds it still had), or None without a budget.

    The budget is relative, measured from arrival on the receiver's own clock, so the two
    hosts' clocks never need to agree; the one-way transit it leaves out makes the cloud
    compute slightly past the edge's deadline at worst, never drop what the edge still wants.
    """
    if budget_ms is None:
        return None
    return received + budget_ms / 1000.0


def expired(deadline: float | None, now: float) -> bool:
    """Whether an offload's deadline has passed (None: it has none)."""
    return deadline is not None and now >= deadline


def split_rows(rows: int, max_batch_size: int) -> list[tuple[int, int]]:
    """[start, stop) ranges cutting `rows` rows into pieces of at most `max_batch_size`.

    The cloud runs a large offload piece by piece, so one offload can hold the compute thread
    for one batch at a time rather than for all its rows at once.
    """
    if rows < 0:
        raise PolicyError(f"rows must be >= 0, got {rows}")
    _positive_int("max_batch_size", max_batch_size)
    return [(start, min(start + max_batch_size, rows)) for start in range(0, rows, max_batch_size)]
