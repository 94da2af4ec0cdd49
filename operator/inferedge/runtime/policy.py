"""Pure runtime decisions: when an exit answers, which exit a degraded answer uses, and when the
cloud's dynamic batcher flushes.

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


@dataclass(frozen=True)
class BatchPolicy:
    """Dynamic batching: flush when `max_batch_size` samples wait or the oldest waited
    `max_wait_ms`, whichever comes first."""

    max_batch_size: int = 32
    max_wait_ms: float = 5.0

    def __post_init__(self) -> None:
        size = self.max_batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise PolicyError(f"max_batch_size must be an integer >= 1, got {size!r}")
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
