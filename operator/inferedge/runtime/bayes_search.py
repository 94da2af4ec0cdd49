"""Bayesian optimisation of the energy knobs, one of EcoGD's baselines, with optuna.

The search proposes settings from a Gaussian-process model of the cost (optuna's `GPSampler`,
log expected improvement) after a few quasi-random ones, and tells the model each window's cost;
after `trials` windows it serves the cheapest setting it measured. It lives here, not in
`core`, because the model needs numpy and a library: optuna is well kept, seeds its samplers,
runs in memory and offers an ask-and-tell interface that fits the optimiser protocol (the driver,
not the library, runs each window). Like grid search it searches once and does not follow a
change of arrival rate.
"""

from __future__ import annotations

import warnings

import optuna

from inferedge.core.knobs import (
    Measurement,
    Reference,
    SearchSpace,
    Setting,
    WindowCount,
    check_in_space,
    cost,
)

TRIALS = 100
"""Windows the search spends before it settles: a third of EcoEdgeInfer's grid is 1,000."""
STARTUP_TRIALS = 10

optuna.logging.set_verbosity(optuna.logging.WARNING)


class BayesianSearch(WindowCount):
    """Gaussian-process Bayesian optimisation behind the `Optimiser` interface.

    `converged` means the budget of `trials` windows is spent; `best()` is then (and before it,
    once anything is measured) the cheapest setting measured so far.
    """

    def __init__(
        self,
        space: SearchSpace,
        reference: Reference,
        *,
        trials: int = TRIALS,
        startup_trials: int = STARTUP_TRIALS,
        seed: int = 0,
    ) -> None:
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise ValueError(f"trials: must be a positive integer, got {trials!r}")
        if isinstance(startup_trials, bool) or not isinstance(startup_trials, int):
            raise ValueError(f"startup_trials: must be an integer, got {startup_trials!r}")
        if not 1 <= startup_trials <= trials:
            raise ValueError(
                f"startup_trials: must lie in 1..trials={trials}, got {startup_trials}"
            )
        self._space = space
        self._reference = reference
        self._trials = trials
        with warnings.catch_warnings():
            # GPSampler is marked experimental; its interface here (seed, startup) is stable
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials)
        self._study = optuna.create_study(direction="minimize", sampler=sampler)
        self._pending: tuple[optuna.trial.Trial, Setting] | None = None
        self._costs: dict[Setting, float] = {}
        self._told = 0

    @property
    def converged(self) -> bool:
        """Whether the budget of trials is spent."""
        return self._told >= self._trials

    def next_setting(self) -> Setting:
        """The setting the model proposes next, then the best one measured."""
        if self.converged:
            return self.best()
        if self._pending is None:
            trial = self._study.ask()
            s = self._space
            setting = Setting(
                trial.suggest_int("cpu_step", s.min_cpu_step, s.cpu_steps - 1),
                trial.suggest_int("gpu_step", s.min_gpu_step, s.gpu_steps - 1),
                trial.suggest_int("batch", s.min_batch, s.max_batch),
            )
            self._pending = (trial, setting)
        return self._pending[1]

    def observe(self, setting: Setting, measurement: Measurement) -> None:
        """Tell the model the window's cost when it measured the proposed setting."""
        check_in_space(self._space, setting)
        value = cost(measurement, self._reference)
        self._costs[setting] = value
        self._counted()
        if self._pending is not None and self._pending[1] == setting:
            self._study.tell(self._pending[0], value)
            self._pending = None
            self._told += 1

    def best(self) -> Setting:
        """The cheapest setting measured (its latest cost), or the maximum before any."""
        if not self._costs:
            return self._space.max_setting()
        return min(self._costs, key=lambda s: (self._costs[s], s))
