"""Clock wishes of the pipelines on one node, and the clocks the node runs because of them.

Pure rules behind the clock agent (`inferedge.runtime.clock_agent`):

- every wish is first held inside the admin's bounds and snapped to a step of the clock's table
  (`grant`): the highest step at or below the wish, or the lowest allowed step when the wish is
  below them all;
- wishes live in a book, one entry per holder (a pipeline on one connection), each with a lease
  (`hold`, `drop`, `expire`);
- per clock kind the node runs the highest granted wish among the live entries (`targets`), so
  no pipeline can slow another below its own wish; with no wish for a kind, that kind goes back
  to its defaults (`None`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

ClockKind = Literal["cpu", "gpu"]
KINDS: Final[tuple[ClockKind, ...]] = ("cpu", "gpu")

K = TypeVar("K")


@dataclass(frozen=True)
class Wish:
    """The clocks (kHz) one pipeline asks for; `None`: no wish for that kind."""

    cpu_khz: int | None = None
    gpu_khz: int | None = None

    def of(self, kind: ClockKind) -> int | None:
        """The wish for `kind`."""
        return self.cpu_khz if kind == "cpu" else self.gpu_khz


@dataclass(frozen=True)
class Held:
    """A granted wish in the book, forgotten at `expires_at` unless renewed."""

    wish: Wish
    expires_at: float


def allowed_steps(
    table: tuple[int, ...], min_khz: int | None = None, max_khz: int | None = None
) -> tuple[int, ...]:
    """The steps of `table` (ascending kHz) inside the admin's bounds (`None`: unbounded).

    Empty when the bounds leave no step: the caller refuses such bounds before serving.
    """
    low = min_khz if min_khz is not None else 0
    high = max_khz if max_khz is not None else max(table, default=0)
    return tuple(step for step in table if low <= step <= high)


def snap(khz: int, steps: tuple[int, ...]) -> int:
    """The highest of `steps` (ascending, non-empty) at or below `khz`, else the lowest step."""
    if not steps:
        raise ValueError("snap: no allowed step")
    below = [step for step in steps if step <= khz]
    return below[-1] if below else steps[0]


def grant(wish: Wish, steps: Mapping[ClockKind, tuple[int, ...]]) -> tuple[Wish, bool]:
    """`wish` held inside the allowed `steps` of each kind, and whether the bounds moved it.

    A kind without steps (the node has no such clock) grants no wish. Snapping down to a table
    step inside the bounds is not clamping; asking above the highest or below the lowest allowed
    step is.
    """
    granted: dict[ClockKind, int | None] = {}
    clamped = False
    for kind in KINDS:
        khz, allowed = wish.of(kind), steps.get(kind, ())
        if khz is None or not allowed:
            granted[kind] = None
            continue
        clamped = clamped or not allowed[0] <= khz <= allowed[-1]
        granted[kind] = snap(khz, allowed)
    return Wish(granted["cpu"], granted["gpu"]), clamped


def hold(book: Mapping[K, Held], key: K, wish: Wish, now: float, lease_s: float) -> dict[K, Held]:
    """The book with `key` holding `wish` until `now + lease_s` (a renewal when it held one)."""
    if lease_s <= 0:
        raise ValueError(f"lease_s: expected a positive number of seconds, got {lease_s}")
    return {**book, key: Held(wish, now + lease_s)}


def drop(book: Mapping[K, Held], keys: Collection[K]) -> dict[K, Held]:
    """The book without the entries of `keys` (released, or their connection closed)."""
    return {key: held for key, held in book.items() if key not in keys}


def expire(book: Mapping[K, Held], now: float) -> dict[K, Held]:
    """The book without the entries whose lease ran out at or before `now`."""
    return {key: held for key, held in book.items() if held.expires_at > now}


def targets(book: Mapping[K, Held]) -> dict[ClockKind, int | None]:
    """Per kind, the highest wish in the book; `None` (the defaults) when nobody wishes."""
    out: dict[ClockKind, int | None] = {}
    for kind in KINDS:
        wishes = [khz for held in book.values() if (khz := held.wish.of(kind)) is not None]
        out[kind] = max(wishes, default=None)
    return out
