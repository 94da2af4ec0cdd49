"""Bayesian optimisation (optuna's GP sampler) behind the optimiser protocol, on a synthetic
surface: no device, no clock."""

from __future__ import annotations

import pytest

from inferedge.core.knobs import Measurement, Reference, Setting, cost, xavier_nx
from inferedge.runtime.bayes_search import BayesianSearch

SPACE = xavier_nx()
REF = Reference(1.0, 1.0)
OPT = Setting(12, 8, 9)


def bowl(s: Setting) -> Measurement:
    dc, dg, db = s.cpu_step - OPT.cpu_step, s.gpu_step - OPT.gpu_step, s.batch - OPT.batch
    energy = 0.5 + 0.010 * dc * dc + 0.020 * dg * dg
    return Measurement(energy, 0.5 + 0.008 * db * db + 0.005 * dc * dc, 316, 0.05)


def test_searches_inside_the_space_for_its_budget_then_serves_the_cheapest_measured() -> None:
    search = BayesianSearch(SPACE, REF, trials=30, startup_trials=8, seed=1)
    seen: dict[Setting, float] = {}
    order: list[float] = []
    for _ in range(30):
        assert not search.converged
        setting = search.next_setting()
        assert search.next_setting() == setting  # asking again does not change the answer
        assert SPACE.contains(setting)
        search.observe(setting, bowl(setting))
        seen[setting] = cost(bowl(setting), REF)
        order.append(seen[setting])
    assert search.converged
    assert search.measurements == 30
    assert search.best() == min(seen, key=lambda s: (seen[s], s))
    assert search.next_setting() == search.best()
    # on a smooth bowl the model's proposals improve on its quasi-random start
    assert min(order[8:]) < min(order[:8])


def test_a_window_at_another_setting_is_recorded_but_not_told_as_the_trial() -> None:
    search = BayesianSearch(SPACE, REF, trials=3, startup_trials=1)
    proposed = search.next_setting()
    other = SPACE.max_setting() if proposed != SPACE.max_setting() else SPACE.min_setting()
    search.observe(other, bowl(other))
    assert search.next_setting() == proposed  # the trial still waits for its own window
    assert search.measurements == 1
    assert not search.converged
    assert search.best() == other


def test_before_any_window_the_maximum_setting_is_best() -> None:
    assert BayesianSearch(SPACE, REF).best() == SPACE.max_setting()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"trials": 0}, "trials"), ({"trials": True}, "trials"), ({"startup_trials": 0}, "startup"),
     ({"trials": 5, "startup_trials": 6}, "startup_trials")],
)  # fmt: skip
def test_bad_configuration_names_the_field(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}"):
        BayesianSearch(SPACE, REF, **kwargs)


def test_outside_the_space_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^setting: "):
        BayesianSearch(SPACE, REF).observe(Setting(0, 0, 1), Measurement(1, 1, 316, 0.05))
