"""The baseline knob optimisers: grid search, linear sweep, maximum settings, epsilon-greedy."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from inferedge.core.ecogd import EcoGD
from inferedge.core.knob_search import EpsilonGreedy, GridSearch, LinearSweep, MaxSettings
from inferedge.core.knobs import Measurement, Optimiser, Reference, SearchSpace, Setting, xavier_nx

Surface = Callable[[Setting], Measurement]
REF = Reference(1.0, 1.0)
SPACE = xavier_nx()
SMALL = SearchSpace(cpu_steps=5, gpu_steps=4, max_batch=4, min_cpu_step=1, min_batch=2)


def bowl(optimum: Setting, interaction: float = 0.0) -> Surface:
    """A convex surface with its minimum at `optimum`; `interaction` couples CPU and GPU."""

    def measure(s: Setting) -> Measurement:
        dc, dg = s.cpu_step - optimum.cpu_step, s.gpu_step - optimum.gpu_step
        db = s.batch - optimum.batch
        energy = 0.5 + 0.010 * dc * dc + 0.020 * dg * dg + interaction * dc * dg
        latency = 0.5 + 0.008 * db * db + 0.005 * dc * dc
        return Measurement(energy, latency, 316, 0.05)

    return measure


def drive(opt: Optimiser, surface: Surface, windows: int, space: SearchSpace) -> list[Setting]:
    proposed = []
    for _ in range(windows):
        setting = opt.next_setting()
        assert space.contains(setting), setting
        assert opt.next_setting() == setting
        opt.observe(setting, surface(setting))
        proposed.append(setting)
    return proposed


def all_optimisers(space: SearchSpace) -> list[Optimiser]:
    return [
        GridSearch(space, REF),
        LinearSweep(space, REF),
        MaxSettings(space),
        EpsilonGreedy(space, REF, rng=random.Random(0)),
        EcoGD(space, REF, rng=random.Random(0)),
    ]


def test_grid_measures_every_setting_once_then_stays_at_the_best() -> None:
    optimum = Setting(3, 1, 3)
    grid = GridSearch(SMALL, REF)
    proposed = drive(grid, bowl(optimum), SMALL.size, SMALL)
    assert sorted(proposed) == list(SMALL.all_settings())
    assert grid.converged
    assert grid.measurements == SMALL.size == 4 * 4 * 3
    assert grid.best() == optimum
    assert drive(grid, bowl(optimum), 5, SMALL) == [optimum] * 5


def test_grid_on_the_xavier_nx_takes_3003_windows() -> None:
    grid = GridSearch(SPACE, REF)
    proposed = drive(grid, bowl(Setting(12, 8, 9)), 3003, SPACE)
    assert len(set(proposed)) == 3003
    assert grid.converged
    assert grid.best() == Setting(12, 8, 9)


def test_grid_before_any_window_chooses_the_maximum() -> None:
    grid = GridSearch(SMALL, REF)
    assert grid.best() == SMALL.max_setting()
    assert not grid.converged


def test_linear_sweep_goes_batch_then_gpu_then_cpu() -> None:
    sweep = LinearSweep(SPACE, REF)
    optimum = Setting(12, 8, 9)
    assert sweep.phase == "batch"
    proposed = drive(sweep, bowl(optimum), 43, SPACE)
    # 13 batches at the top clocks, then 10 more GPU steps, then 20 more CPU steps
    assert all(s.cpu_step == 24 and s.gpu_step == 14 for s in proposed[:13])
    assert [s.batch for s in proposed[:13]] == list(range(4, 17))
    assert all(s.cpu_step == 24 and s.batch == 9 for s in proposed[13:23])
    assert all(s.gpu_step == 8 and s.batch == 9 for s in proposed[23:])
    assert len(set(proposed)) == 43
    assert sweep.converged
    assert sweep.phase is None
    # a separable surface is solved axis by axis
    assert sweep.best() == optimum
    assert drive(sweep, bowl(optimum), 3, SPACE) == [optimum] * 3


def test_linear_sweep_misses_the_optimum_when_the_clocks_interact() -> None:
    optimum = Setting(12, 8, 9)
    surface = bowl(optimum, interaction=0.004)
    sweep = LinearSweep(SPACE, REF)
    drive(sweep, surface, 43, SPACE)
    assert sweep.converged
    # the GPU sweep ran at the top CPU step, where the interaction pulls the GPU optimum down
    assert sweep.best() == Setting(12, 7, 9)
    eco = EcoGD(SPACE, REF)
    drive(eco, surface, 300, SPACE)
    assert eco.best() == optimum


def test_max_settings_never_moves() -> None:
    fixed = MaxSettings(SPACE)
    assert fixed.converged
    assert drive(fixed, bowl(Setting(12, 8, 9)), 5, SPACE) == [SPACE.max_setting()] * 5
    assert fixed.best() == SPACE.max_setting()
    assert fixed.measurements == 5


def test_epsilon_greedy_finds_the_best_arm_of_a_subset() -> None:
    arms = [Setting(c, g, b) for c in (1, 3) for g in (0, 2) for b in (2, 4)]
    optimum = Setting(3, 2, 2)
    bandit = EpsilonGreedy(SMALL, REF, rng=random.Random(4), arms=arms, stable_pulls=100)
    proposed = drive(bandit, bowl(optimum), 1000, SMALL)
    assert set(proposed) <= set(arms)  # the maximum is not an arm, so it starts at arms[0]
    assert proposed[0] == arms[0]
    assert bandit.best() == optimum
    assert bandit.converged
    # exploitation dominates: about 1 - epsilon of the windows go to the greedy arm
    assert proposed[500:].count(optimum) > 400
    assert bandit.mean_cost(optimum) == pytest.approx(0.5)


def test_epsilon_greedy_without_exploration_stays_at_its_first_arm() -> None:
    bandit = EpsilonGreedy(SPACE, REF, rng=random.Random(0), epsilon=0.0, stable_pulls=5)
    assert drive(bandit, bowl(Setting(12, 8, 9)), 10, SPACE) == [SPACE.max_setting()] * 10
    assert bandit.converged


def test_epsilon_greedy_is_deterministic_with_a_seed() -> None:
    def run(seed: int) -> list[Setting]:
        bandit = EpsilonGreedy(SPACE, REF, rng=random.Random(seed))
        return drive(bandit, bowl(Setting(12, 8, 9)), 300, SPACE)

    assert run(3) == run(3)
    assert run(3) != run(4)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"epsilon": 1.5}, "epsilon"),
        ({"epsilon": -0.1}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
        ({"stable_pulls": 0}, "stable_pulls"),
        ({"arms": []}, "arms"),
        ({"arms": [Setting(0, 0, 1)]}, "arms"),
    ],
)
def test_epsilon_greedy_rejects_bad_configuration(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        EpsilonGreedy(SMALL, REF, **kwargs)  # type: ignore[arg-type]


def test_no_optimiser_proposes_outside_the_clamps() -> None:
    below = bowl(Setting(0, 0, 1))  # the unclamped optimum lies below every clamp
    for opt in all_optimisers(SMALL):
        drive(opt, below, 200, SMALL)
        assert SMALL.contains(opt.best())
    # the searches that cover the space end at the clamped corner
    for opt in (GridSearch(SMALL, REF), LinearSweep(SMALL, REF), EcoGD(SMALL, REF)):
        drive(opt, below, 200, SMALL)
        assert opt.best() == SMALL.min_setting(), type(opt).__name__


def test_every_optimiser_refuses_an_observation_outside_the_space() -> None:
    for opt in all_optimisers(SMALL):
        with pytest.raises(ValueError, match=r"^setting: "):
            opt.observe(Setting(0, 0, 1), Measurement(1.0, 1.0, 316, 0.05))
        assert opt.measurements == 0
