"""Cut points, whatever the framework: how a cut model is indexed, which cuts are kept, and how
much memory each segment holds at most.

Cut point 0 is the model's input and cut point K its output; segment i runs from cut i-1 to
cut i. A backend finds the candidate cuts with a liveness sweep over its own graph (every
position after which exactly one tensor is live) and builds the sub-model between two cuts;
choosing among the candidates and the arithmetic on their indices are the same everywhere, so
the same architecture gets the same cuts in every framework.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise
from typing import Generic, TypeVar

from inferedge.core.exits import ExitSpecError
from inferedge.core.profile import CutPoint

_Part = TypeVar("_Part")
_Value = TypeVar("_Value")

Costs = tuple[int, int, int]
"""At a candidate cut: cumulative FLOPs, cumulative parameter bytes, bytes of its tensor."""


class CutSequence(ABC, Generic[_Part]):
    """A model's cut points and the sub-models between them.

    `segment(i)` runs from cut i-1 to cut i, `head(k)` from the input to cut k and `tail(k)`
    from cut k to the output, so `tail(k)(head(k)(x))` computes what the model computes. A
    backend implements `between`.
    """

    def __init__(self, cut_points: tuple[CutPoint, ...], peak_bytes: tuple[int, ...]) -> None:
        self.cut_points = cut_points
        self._peak_bytes = peak_bytes

    @property
    def num_cuts(self) -> int:
        """K: the index of the last cut point (the model output)."""
        return len(self.cut_points) - 1

    @abstractmethod
    def between(self, start: int, end: int) -> _Part:
        """The model from cut `start` to cut `end` (0 <= start <= end <= K)."""

    def head(self, k: int) -> _Part:
        """The model from its input up to cut k (0 <= k <= K)."""
        return self.between(0, k)

    def tail(self, k: int) -> _Part:
        """The model from cut k (0 <= k <= K) to its output."""
        return self.between(k, self.num_cuts)

    def segment(self, i: int) -> _Part:
        """Segment i (1 <= i <= K): from cut i-1 to cut i."""
        self._check_segment(i)
        return self.between(i - 1, i)

    def segment_peak_bytes(self, i: int) -> int:
        """Largest activation memory simultaneously held inside segment i, for one sample."""
        self._check_segment(i)
        return self._peak_bytes[i - 1]

    def check_range(self, start: int, end: int) -> None:
        """`IndexError` unless 0 <= start <= end <= K, for `between`."""
        if not 0 <= start <= end <= self.num_cuts:
            raise IndexError(f"cuts {start}..{end} are out of range 0..{self.num_cuts}")

    def check_taps(self, cuts: Iterable[int]) -> None:
        """`ExitSpecError` unless every one of `cuts` is a cut point of this model."""
        for cut in cuts:
            if not 0 <= cut <= self.num_cuts:
                raise ExitSpecError(f"exit at cut {cut}: out of range 0..{self.num_cuts}")

    def _check_segment(self, i: int) -> None:
        if not 1 <= i <= self.num_cuts:
            raise IndexError(f"segment {i} is out of range 1..{self.num_cuts}")


def kept_cuts(
    candidates: Sequence[tuple[_Value, int]], costs: Callable[[_Value, int], Costs]
) -> list[tuple[_Value, int]]:
    """The candidate cuts, `(tensor, position)` pairs in graph order, worth keeping.

    A cut followed only by free work (no FLOPs, no parameters: a ReLU, a flatten) up to a cut of
    the same size offers nothing the later cut does not, so only the later one is kept. This is
    what keeps `relu(x + skip)` at the end of a residual block whole. The input is always kept.
    """
    found = [costs(*candidate) for candidate in candidates]
    kept = [len(found) - 1]
    for k in range(len(found) - 2, -1, -1):
        if k == 0 or found[k] != found[kept[-1]]:
            kept.append(k)
    return [candidates[k] for k in reversed(kept)]


def segment_peaks(
    cuts: Sequence[tuple[_Value, int]], held_bytes: Callable[[_Value], int], running: Sequence[int]
) -> tuple[int, ...]:
    """Per segment between consecutive `cuts`, the most bytes one sample holds at once: its
    input's `held_bytes`, or the sweep's `running` bytes at any position inside it."""
    return tuple(
        max([held_bytes(source), *running[start + 1 : end + 1]])
        for (source, start), (_, end) in pairwise(cuts)
    )
