"""EcoGD, EcoEdgeInfer's optimiser: hill climbing over CPU step, GPU step and batch size.

One optimiser step is one measurement window (one `observe`), so history age, the loop counter
and the measurement count all tick together, and the driver always has a setting to run.

From a centre (first the maximum setting) EcoGD:
1. measures the centre and its 6 side neighbours, each that has no fresh measurement;
2. estimates the 4 diagonal neighbours in the CPU-GPU plane from their measured sides,
   f(c+dc, g+dg, b) ~ f(c+dc, g, b) + f(c, g+dg, b) - f(c, g, b) (`estimate_diagonal`); the other
   16 points of the 3x3x3 cube involve a batch step, whose interaction with the clocks the slides
   call non-estimable, so they are not candidates;
3. takes the lowest cost among the centre and its 6 + 4 neighbours. A measured winner becomes the
   centre at once; an estimated winner is measured first and the choice is made again with its
   real cost, so the centre is always a measured point. Ties keep the centre, so a flat region
   is a resting place rather than a walk;
4. when the centre wins its round it is converged and keeps being served (each window refreshes
   it); after `loop_steps` windows without a move it jumps to a random point of the cube outside
   the 6-neighbourhood (the slides' "jump outside 6-nbhrhood"), dropping that point's history so
   the jump really looks again.
A measurement older than `history_steps` windows is stale: it is not used and is measured again
when a round needs it. A window whose arrival rate differs from the rate at the last reset by more
than `arrival_change` (relative) clears the history, since every cost was measured under another
load; the centre stays where it is and the search restarts from there.

One extension, on by default (`batch_scan=True`; off, the optimiser is EcoGD as published):
the cost is smooth in the clocks but not in the batch size. Under bursts of n requests a batch
that divides n serves each burst without waiting for the next, so the cost has a deep notch at
every divisor of n and hill climbing one batch step at a time stops at the first local minimum
(from batch 16 under bursts of 10 it stops at 15, 60 % above the best). So before the first
round, and again whenever the centre has won its round at clocks at least `rescan_steps` steps
(in either clock) from every scan since the last reset, every batch of the space is measured at
the centre's clocks (13 windows on the Xavier NX, against 3,003 for the grid) and the cheapest
becomes the centre; hill climbing goes on from there. Where the notches lie depends on the
arrivals rather than the clocks, so a centre that wanders a step or two under noisy arrivals
does not scan again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import product
from typing import Literal

from inferedge.core.knobs import Measurement, Reference, SearchSpace, Setting, check_in_space, cost

HISTORY_STEPS = 20
LOOP_STEPS = 10
RESCAN_STEPS = 3
ARRIVAL_CHANGE = 0.10
# one round measures at most the centre, 6 sides and 4 diagonals; a shorter memory could forget
# the first of them before the round decides, and never decide
_ROUND_MEASUREMENTS = 11

_Action = Literal["measure", "move", "stay", "scan", "scanned"]
_Clocks = tuple[int, int]


def estimate_diagonal(centre: float, cpu_side: float, gpu_side: float) -> float:
    """Cost of a CPU-GPU diagonal neighbour from the two sides it shares with the centre.

    Assumes the two clock steps act additively near the centre: the diagonal gains both sides'
    changes, f(c+dc, g+dg) ~ f(c+dc, g) + f(c, g+dg) - f(c, g).
    """
    return cpu_side + gpu_side - centre


@dataclass(frozen=True)
class Candidate:
    """One point a round compares: its cost, and whether that cost is an estimate."""

    setting: Setting
    cost: float
    estimated: bool


@dataclass(frozen=True)
class _Entry:
    cost: float
    step: int


class EcoGD:
    """EcoGD behind the `Optimiser` interface (see the module docstring for the algorithm).

    `converged` is True once the centre was the best of its 6 + 4 neighbours over a complete
    round, and stays True until the next move, jump or reset. `best()` is the lowest fresh
    measured cost, or the centre while nothing fresh is known.
    """

    def __init__(
        self,
        space: SearchSpace,
        reference: Reference,
        *,
        rng: random.Random | None = None,
        history_steps: int = HISTORY_STEPS,
        loop_steps: int = LOOP_STEPS,
        arrival_change: float = ARRIVAL_CHANGE,
        batch_scan: bool = True,
        rescan_steps: int = RESCAN_STEPS,
    ) -> None:
        if isinstance(history_steps, bool) or history_steps < _ROUND_MEASUREMENTS:
            raise ValueError(
                f"history_steps: must be at least {_ROUND_MEASUREMENTS}, the most windows one "
                f"round takes, got {history_steps}"
            )
        if isinstance(loop_steps, bool) or loop_steps < 1:
            raise ValueError(f"loop_steps: must be at least 1, got {loop_steps}")
        if isinstance(rescan_steps, bool) or rescan_steps < 1:
            raise ValueError(f"rescan_steps: must be at least 1, got {rescan_steps}")
        if not arrival_change > 0.0:  # also rejects NaN
            raise ValueError(f"arrival_change: must be positive, got {arrival_change}")
        self._space = space
        self._reference = reference
        self._rng = rng if rng is not None else random.Random(0)
        self._history_steps = history_steps
        self._loop_steps = loop_steps
        self._arrival_change = arrival_change
        self._batch_scan = batch_scan
        self._rescan_steps = rescan_steps
        # the clocks whose batch line has been scanned since the last reset
        self._scanned: set[_Clocks] = set()
        self._scanning = batch_scan
        self._centre = space.max_setting()
        self._history: dict[Setting, _Entry] = {}
        self._step = 0
        self._since_move = 0
        self._converged = False
        self._baseline_interval_s: float | None = None
        self._jumps = 0
        self._resets = 0

    @property
    def centre(self) -> Setting:
        """The current centre of the search."""
        return self._centre

    @property
    def measurements(self) -> int:
        """Windows observed so far."""
        return self._step

    @property
    def converged(self) -> bool:
        """Whether the centre won its last complete round (see the class docstring)."""
        return self._converged

    @property
    def jumps(self) -> int:
        """How many times loop detection jumped."""
        return self._jumps

    @property
    def scanned_clocks(self) -> tuple[tuple[int, int], ...]:
        """The (CPU step, GPU step) pairs whose batch line was scanned since the last reset."""
        return tuple(sorted(self._scanned))

    @property
    def resets(self) -> int:
        """How many times an arrival-rate change cleared the history."""
        return self._resets

    @property
    def steps_since_move(self) -> int:
        """Windows observed since the centre last moved, jumped or was reset."""
        return self._since_move

    def fresh_cost(self, setting: Setting) -> float | None:
        """The cost measured at `setting` if it is still fresh, else None."""
        entry = self._history.get(setting)
        if entry is None or self._step - 1 - entry.step >= self._history_steps:
            return None
        return entry.cost

    def candidates(self) -> tuple[Candidate, ...]:
        """The centre, its side neighbours and its CPU-GPU diagonals, with measured or estimated
        costs; empty while the centre or a side lacks a fresh measurement.
        """
        centre_cost = self.fresh_cost(self._centre)
        sides = self._space.neighbours(self._centre)
        side_costs = [self.fresh_cost(s) for s in sides]
        if centre_cost is None or any(c is None for c in side_costs):
            return ()
        found = [Candidate(self._centre, centre_cost, estimated=False)]
        found += [
            Candidate(s, c, estimated=False)
            for s, c in zip(sides, side_costs, strict=True)
            if c is not None
        ]
        for d_cpu, d_gpu in product((-1, 1), (-1, 1)):
            diagonal = self._space.offset(self._centre, d_cpu, d_gpu, 0)
            if diagonal is None:
                continue
            measured = self.fresh_cost(diagonal)
            if measured is not None:
                found.append(Candidate(diagonal, measured, estimated=False))
                continue
            # both sides lie in the space whenever the diagonal does (the space is a box), and
            # every side is fresh by now; the checks only keep the types honest
            cpu_side = self._space.offset(self._centre, d_cpu, 0, 0)
            gpu_side = self._space.offset(self._centre, 0, d_gpu, 0)
            if cpu_side is None or gpu_side is None:
                continue
            cpu_cost, gpu_cost = self.fresh_cost(cpu_side), self.fresh_cost(gpu_side)
            if cpu_cost is not None and gpu_cost is not None:
                estimate = estimate_diagonal(centre_cost, cpu_cost, gpu_cost)
                found.append(Candidate(diagonal, estimate, estimated=True))
        return tuple(found)

    def next_setting(self) -> Setting:
        """The point the current scan or round needs, or the centre once it has won its round."""
        _, setting = self._plan()
        return setting

    def observe(self, setting: Setting, measurement: Measurement) -> None:
        """Record one window, then move, stay or jump as the round now dictates."""
        check_in_space(self._space, setting)
        self._maybe_reset(measurement)
        self._history[setting] = _Entry(cost(measurement, self._reference), self._step)
        self._step += 1
        moved = False
        action, target = self._plan()
        # each move lands on a strictly cheaper measured point and a scan makes its clocks
        # scanned until the next reset, so this settles
        while action in ("move", "scan", "scanned"):
            if action == "scan":
                self._scanning = True
            elif action == "scanned":
                self._scanning = False
                self._scanned.add((self._centre.cpu_step, self._centre.gpu_step))
            if action != "scan" and target != self._centre:
                self._centre = target
                moved = True
            action, target = self._plan()
        self._since_move = 0 if moved else self._since_move + 1
        if moved:
            self._converged = False
        if action == "stay":
            self._converged = True
            if self._since_move >= self._loop_steps:
                self._jump()

    def scan_line(self) -> tuple[Setting, ...]:
        """Every batch of the space at the centre's clocks: the points a batch scan measures."""
        c = self._centre
        batches = range(self._space.min_batch, self._space.max_batch + 1)
        return tuple(Setting(c.cpu_step, c.gpu_step, b) for b in batches)

    def best(self) -> Setting:
        """The setting with the lowest fresh measured cost, or the centre if none is fresh."""
        fresh = [(c, s) for s in self._history if (c := self.fresh_cost(s)) is not None]
        return min(fresh)[1] if fresh else self._centre

    def _plan(self) -> tuple[_Action, Setting]:
        if self._scanning:
            line = self.scan_line()
            for probe in line:
                if self.fresh_cost(probe) is None:
                    return "measure", probe
            costs = {s: c for s in line if (c := self.fresh_cost(s)) is not None}
            # ties keep the centre, as in a round
            return "scanned", min(line, key=lambda s: (costs[s], s != self._centre))
        for probe in (self._centre, *self._space.neighbours(self._centre)):
            if self.fresh_cost(probe) is None:
                return "measure", probe
        # ranks break cost ties: keep the centre, then prefer a measured point to an estimate
        winner = min(
            self.candidates(),
            key=lambda c: (c.cost, 0 if c.setting == self._centre else 1 + c.estimated),
        )
        if winner.setting == self._centre:
            if self._batch_scan and self._far_from_scans():
                return "scan", self._centre
            return "stay", self._centre
        if winner.estimated:
            return "measure", winner.setting
        return "move", winner.setting

    def _far_from_scans(self) -> bool:
        c = self._centre
        return all(
            max(abs(c.cpu_step - cpu), abs(c.gpu_step - gpu)) >= self._rescan_steps
            for cpu, gpu in self._scanned
        )

    def _maybe_reset(self, measurement: Measurement) -> None:
        interval = measurement.arrival_interval_s
        if self._baseline_interval_s is None:
            self._baseline_interval_s = interval
            return
        # rates are reciprocal intervals: rate / baseline rate = baseline interval / interval
        if abs(self._baseline_interval_s / interval - 1.0) <= self._arrival_change:
            return
        self._baseline_interval_s = interval
        self._history.clear()
        self._scanned.clear()
        self._scanning = self._batch_scan
        self._since_move = 0
        self._converged = False
        self._resets += 1

    def _jump(self) -> None:
        cube = [
            moved
            for move in product((-1, 0, 1), repeat=3)
            if sum(d != 0 for d in move) >= 2
            and (moved := self._space.offset(self._centre, *move)) is not None
        ]
        targets = cube or list(self._space.neighbours(self._centre))
        if not targets:
            return
        self._centre = self._rng.choice(targets)
        self._history.pop(self._centre, None)
        self._since_move = 0
        self._converged = False
        self._jumps += 1
