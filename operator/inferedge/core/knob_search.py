"""The baselines EcoGD is compared with, behind the same `Optimiser` interface.

None of them reacts to a change of arrival rate: grid search and the linear sweep search once, and
the bandit averages over everything it has seen; a driver that wants them to adapt starts a new
one. Bayesian optimisation (it needs a library) and the device's own DVFS governor (it needs the
emulated device) are not here.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from inferedge.core.knobs import (
    Measurement,
    Reference,
    SearchSpace,
    Setting,
    WindowCount,
    check_in_space,
    cost,
)

EPSILON = 0.1
STABLE_PULLS = 50

_Axis = Literal["batch", "gpu", "cpu"]
SWEEP_ORDER: tuple[_Axis, ...] = ("batch", "gpu", "cpu")


def _lowest(costs: dict[Setting, float]) -> Setting | None:
    # ties go to the smaller setting, so the choice does not depend on measuring order
    return min(costs, key=lambda s: (costs[s], s)) if costs else None


class GridSearch(WindowCount):
    """Measures every setting of the clamped space once, in ascending order, then stays at the
    cheapest. `converged` means every setting has been measured (3,003 windows on the Xavier NX).
    """

    def __init__(self, space: SearchSpace, reference: Reference) -> None:
        self._space = space
        self._reference = reference
        self._order = tuple(space.all_settings())
        self._cursor = 0
        self._costs: dict[Setting, float] = {}

    @property
    def converged(self) -> bool:
        """Whether every setting of the space has been measured."""
        return self._cursor >= len(self._order)

    def next_setting(self) -> Setting:
        """The first setting not yet measured, then the best one."""
        return self._order[self._cursor] if not self.converged else self.best()

    def observe(self, setting: Setting, measurement: Measurement) -> None:
        """Record the window's cost; a setting measured again keeps its latest cost."""
        check_in_space(self._space, setting)
        self._costs[setting] = cost(measurement, self._reference)
        self._counted()
        while not self.converged and self._order[self._cursor] in self._costs:
            self._cursor += 1

    def best(self) -> Setting:
        """The cheapest setting measured so far, or the maximum before any measurement."""
        return _lowest(self._costs) or self._space.max_setting()


class LinearSweep(WindowCount):
    """One axis at a time from the maximum setting: sweep the batch size with the clocks at their
    maximum, keep the cheapest batch; sweep the GPU step at that batch, keep the cheapest; then
    the CPU step. Each sweep reuses the point it starts from, so the Xavier NX costs
    13 + 10 + 20 = 43 windows. `converged` means the CPU sweep is done.
    """

    def __init__(self, space: SearchSpace, reference: Reference) -> None:
        self._space = space
        self._reference = reference
        self._base = space.max_setting()
        self._phase = 0
        self._costs: dict[Setting, float] = {}

    @property
    def converged(self) -> bool:
        """Whether all three sweeps are done."""
        return self._phase >= len(SWEEP_ORDER)

    @property
    def phase(self) -> _Axis | None:
        """The axis being swept, or None once converged."""
        return None if self.converged else SWEEP_ORDER[self._phase]

    def line(self, axis: _Axis, through: Setting) -> tuple[Setting, ...]:
        """Every setting of the clamped space along `axis` through `through`, ascending."""
        space = self._space
        if axis == "batch":
            values = range(space.min_batch, space.max_batch + 1)
            return tuple(Setting(through.cpu_step, through.gpu_step, v) for v in values)
        if axis == "gpu":
            values = range(space.min_gpu_step, space.gpu_steps)
            return tuple(Setting(through.cpu_step, v, through.batch) for v in values)
        values = range(space.min_cpu_step, space.cpu_steps)
        return tuple(Setting(v, through.gpu_step, through.batch) for v in values)

    def next_setting(self) -> Setting:
        """The next unmeasured point of the current sweep, or the result once converged."""
        axis = self.phase
        if axis is None:
            return self._base
        return next(s for s in self.line(axis, self._base) if s not in self._costs)

    def observe(self, setting: Setting, measurement: Measurement) -> None:
        """Record the window's cost and close every sweep that is complete."""
        check_in_space(self._space, setting)
        self._costs[setting] = cost(measurement, self._reference)
        self._counted()
        while (axis := self.phase) is not None:
            line = self.line(axis, self._base)
            if any(s not in self._costs for s in line):
                return
            self._base = _lowest({s: self._costs[s] for s in line}) or self._base
            self._phase += 1

    def best(self) -> Setting:
        """The sweeps' result once converged, else the cheapest setting measured so far."""
        if self.converged:
            return self._base
        return _lowest(self._costs) or self._base


class MaxSettings(WindowCount):
    """Always the maximum setting: the reference point, and what an untuned device runs.

    `converged` is always True, as there is nothing to search.
    """

    def __init__(self, space: SearchSpace) -> None:
        self._space = space

    @property
    def converged(self) -> bool:
        """Always True."""
        return True

    def next_setting(self) -> Setting:
        """The maximum setting."""
        return self._space.max_setting()

    def observe(self, setting: Setting, measurement: Measurement) -> None:
        """Count the window; nothing is learnt from it."""
        check_in_space(self._space, setting)
        self._counted()

    def best(self) -> Setting:
        """The maximum setting."""
        return self._space.max_setting()


class EpsilonGreedy(WindowCount):
    """An epsilon-greedy bandit whose arms are settings (by default the whole clamped grid).

    It starts at the maximum setting (or the first arm when the maximum is not an arm); after each
    window it explores a uniformly drawn arm with probability `epsilon`, else exploits the arm
    with the lowest mean cost so far. Untried arms are only reached by exploring, so on the
    3,003-arm Xavier NX grid it improves slowly; pass a coarser `arms` subset to make it faster.
    `converged` means the greedy arm has been the same over the last `stable_pulls` windows.
    """

    def __init__(
        self,
        space: SearchSpace,
        reference: Reference,
        *,
        rng: random.Random | None = None,
        epsilon: float = EPSILON,
        arms: Sequence[Setting] | None = None,
        stable_pulls: int = STABLE_PULLS,
    ) -> None:
        if not 0.0 <= epsilon <= 1.0:  # also rejects NaN
            raise ValueError(f"epsilon: must lie in [0, 1], got {epsilon}")
        if isinstance(stable_pulls, bool) or stable_pulls < 1:
            raise ValueError(f"stable_pulls: must be at least 1, got {stable_pulls}")
        chosen = tuple(arms) if arms is not None else tuple(space.all_settings())
        if not chosen:
            raise ValueError("arms: must name at least one setting")
        for arm in chosen:
            if not space.contains(arm):
                raise ValueError(f"arms: {arm} lies outside the clamped search space")
        self._space = space
        self._reference = reference
        self._rng = rng if rng is not None else random.Random(0)
        self._epsilon = epsilon
        self._arms = chosen
        self._stable_pulls = stable_pulls
        self._totals: dict[Setting, float] = {}
        self._pulls: dict[Setting, int] = {}
        self._next = space.max_setting() if space.max_setting() in chosen else chosen[0]
        self._greedy: Setting | None = None
        self._stable = 0

    @property
    def converged(self) -> bool:
        """Whether the greedy arm has not changed over the last `stable_pulls` windows."""
        return self._stable >= self._stable_pulls

    def next_setting(self) -> Setting:
        """The arm drawn after the last window."""
        return self._next

    def observe(self, setting: Setting, measurement: Measurement) -> None:
        """Add the window to its setting's mean, then draw the next arm."""
        check_in_space(self._space, setting)
        self._totals[setting] = self._totals.get(setting, 0.0) + cost(measurement, self._reference)
        self._pulls[setting] = self._pulls.get(setting, 0) + 1
        self._counted()
        greedy = self.best()
        self._stable = self._stable + 1 if greedy == self._greedy else 1
        self._greedy = greedy
        explore = self._rng.random() < self._epsilon
        self._next = self._rng.choice(self._arms) if explore else greedy

    def mean_cost(self, setting: Setting) -> float | None:
        """The mean cost observed at `setting`, or None if it was never pulled."""
        pulls = self._pulls.get(setting)
        return None if pulls is None else self._totals[setting] / pulls

    def best(self) -> Setting:
        """The setting with the lowest mean cost, or the first arm to pull before any window."""
        means = {s: self._totals[s] / n for s, n in self._pulls.items()}
        return _lowest(means) or self._next
