"""When the edge moves to another operating point: hysteresis over the map's cells.

Each new link estimate names a cell of the configuration map (`ConfigurationMap.lookup`). The
edge moves to that cell's point only when the same other cell has come back `confirmations`
times in a row and at least `min_dwell_s` have passed since the last move: one noisy estimate,
or a link that flaps across a cell's border, does not make it move back and forth. The estimate
itself changes only when the change detector has seen the link change (runtime.link_estimator),
so this is the second of two stages.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

Cell = tuple[int, int]  # (bandwidth index, RTT index) of the map's grid


@dataclass(frozen=True)
class SwitchPolicy:
    """How sure the edge must be before it moves."""

    confirmations: int = 3
    min_dwell_s: float = 2.0

    def __post_init__(self) -> None:
        if self.confirmations < 1:
            raise ValueError(f"confirmations: expected at least 1, got {self.confirmations}")
        if not self.min_dwell_s >= 0:
            raise ValueError(f"min_dwell_s: expected >= 0 seconds, got {self.min_dwell_s}")


@dataclass(frozen=True)
class SwitchState:
    """The cell served, since when, and the other cell seen lately (and how often in a row)."""

    serving: Cell
    since_s: float
    candidate: Cell | None = None
    seen: int = 0
    switches: int = 0


def observe(state: SwitchState, cell: Cell, now_s: float, policy: SwitchPolicy) -> SwitchState:
    """The state after an estimate that maps to `cell`; `switches` counts the moves."""
    if cell == state.serving:
        return replace(state, candidate=None, seen=0)
    seen = state.seen + 1 if cell == state.candidate else 1
    if seen >= policy.confirmations and now_s - state.since_s >= policy.min_dwell_s:
        return SwitchState(cell, now_s, None, 0, state.switches + 1)
    return replace(state, candidate=cell, seen=seen)
