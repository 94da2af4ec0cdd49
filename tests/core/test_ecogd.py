"""EcoGD on synthetic cost surfaces: no model, no device, no clock.

Most tests pin EcoGD as published (`batch_scan=False`); the batch scan has its own at the end.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from itertools import pairwise

import pytest

from inferedge.core.ecogd import EcoGD, estimate_diagonal
from inferedge.core.knob_search import GridSearch
from inferedge.core.knobs import Measurement, Reference, SearchSpace, Setting, xavier_nx

Surface = Callable[[Setting], Measurement]
REF = Reference(1.0, 1.0)  # surfaces below are already relative, so cost = (E + L) / 2
SPACE = xavier_nx()
OPT = Setting(12, 8, 9)


def bowl(optimum: Setting = OPT, interval_s: float = 0.05) -> Surface:
    """A convex surface with a CPU-GPU interaction in energy; its minimum is `optimum`."""

    def measure(s: Setting) -> Measurement:
        dc, dg = s.cpu_step - optimum.cpu_step, s.gpu_step - optimum.gpu_step
        db = s.batch - optimum.batch
        energy = 0.5 + 0.010 * dc * dc + 0.020 * dg * dg + 0.004 * dc * dg
        latency = 0.5 + 0.008 * db * db + 0.005 * dc * dc
        return Measurement(energy, latency, 316, interval_s)

    return measure


def table(costs: dict[Setting, float], default: float = 5.0) -> Surface:
    """A surface given point by point; the cost of a point is its table value."""
    return lambda s: Measurement(costs.get(s, default), costs.get(s, default), 316, 0.05)


def step(opt: EcoGD, surface: Surface) -> Setting:
    setting = opt.next_setting()
    opt.observe(setting, surface(setting))
    return setting


def drive(opt: EcoGD, surface: Surface, windows: int, space: SearchSpace = SPACE) -> list[Setting]:
    proposed = []
    for _ in range(windows):
        setting = opt.next_setting()
        assert space.contains(setting), setting
        assert opt.next_setting() == setting  # asking again does not change the answer
        opt.observe(setting, surface(setting))
        proposed.append(setting)
    return proposed


def side(centre: Setting, d_cpu: int, d_gpu: int) -> Setting:
    moved = SPACE.offset(centre, d_cpu, d_gpu, 0)
    assert moved is not None
    return moved


def first_converged_at(opt: EcoGD, surface: Surface, target: Setting, limit: int) -> int | None:
    for _ in range(limit):
        setting = opt.next_setting()
        opt.observe(setting, surface(setting))
        if opt.converged and opt.centre == target:
            return opt.measurements
    return None


def test_diagonal_estimate_formula() -> None:
    assert estimate_diagonal(centre=2.0, cpu_side=3.0, gpu_side=5.0) == 6.0

    # exact on a surface where the clocks act additively
    def f(c: int, g: int) -> float:
        return 0.3 * c - 0.7 * g + 4.0

    assert estimate_diagonal(f(5, 5), f(6, 5), f(5, 6)) == pytest.approx(f(6, 6))
    assert estimate_diagonal(f(5, 5), f(4, 5), f(5, 4)) == pytest.approx(f(4, 4))


def test_first_round_probes_centre_and_sides_then_estimates_the_diagonal() -> None:
    surface = bowl()
    opt = EcoGD(SPACE, REF, batch_scan=False)
    top = SPACE.max_setting()
    probed = drive(opt, surface, 4)
    assert probed == [top, Setting(23, 14, 16), Setting(24, 13, 16), Setting(24, 14, 15)]
    assert opt.converged is False


def test_every_estimate_follows_the_formula_and_interior_centres_estimate_four() -> None:
    surface = bowl()
    opt = EcoGD(SPACE, REF, batch_scan=False, loop_steps=10_000)
    saw_four = False
    for _ in range(200):
        step(opt, surface)
        found = opt.candidates()
        estimated = [c for c in found if c.estimated]
        saw_four = saw_four or len(estimated) == 4
        c0 = opt.fresh_cost(opt.centre)
        for cand in estimated:
            d_cpu = cand.setting.cpu_step - opt.centre.cpu_step
            d_gpu = cand.setting.gpu_step - opt.centre.gpu_step
            assert cand.setting.batch == opt.centre.batch
            assert abs(d_cpu) == abs(d_gpu) == 1
            cpu_side = opt.fresh_cost(side(opt.centre, d_cpu, 0))
            gpu_side = opt.fresh_cost(side(opt.centre, 0, d_gpu))
            assert c0 is not None
            assert cpu_side is not None
            assert gpu_side is not None
            assert cand.cost == pytest.approx(cpu_side + gpu_side - c0)
    assert saw_four


def test_an_estimated_winner_is_measured_before_it_becomes_the_centre() -> None:
    space = SearchSpace(cpu_steps=3, gpu_steps=3, max_batch=2)
    top, diag = Setting(2, 2, 2), Setting(1, 1, 2)
    sides = {Setting(1, 2, 2): 0.9, Setting(2, 1, 2): 0.9, Setting(2, 2, 1): 1.5}
    # the estimate 0.9 + 0.9 - 1.0 = 0.8 wins the round, but the point really costs 2.0
    opt = EcoGD(space, REF, batch_scan=False)
    surface = table({top: 1.0, **sides, diag: 2.0})
    drive(opt, surface, 4, space)
    assert opt.centre == top
    assert opt.next_setting() == diag
    opt.observe(diag, surface(diag))
    assert opt.centre == Setting(1, 2, 2)  # the cheaper measured side; ties go to the CPU side
    # when the measurement confirms the estimate, the diagonal becomes the centre
    opt = EcoGD(space, REF, batch_scan=False)
    surface = table({top: 1.0, **sides, diag: 0.5})
    drive(opt, surface, 5, space)
    assert opt.centre == diag


def test_converges_to_the_optimum_of_a_convex_surface_far_faster_than_grid() -> None:
    surface = bowl()
    grid = GridSearch(SPACE, REF)
    while not grid.converged:
        grid.observe(grid.next_setting(), surface(grid.next_setting()))
    assert grid.best() == OPT
    assert grid.measurements == 3003
    for seed in range(3):
        opt = EcoGD(SPACE, REF, batch_scan=False, rng=random.Random(seed))
        windows = first_converged_at(opt, surface, OPT, limit=500)
        # 83 windows from the maximum setting (27 axis steps away) against grid's 3,003
        assert windows is not None
        assert windows <= 100
        assert windows * 30 < grid.measurements
        drive(opt, surface, 300)
        assert opt.best() == OPT


def test_plateau_is_a_resting_place() -> None:
    opt = EcoGD(SPACE, REF, batch_scan=False)
    drive(opt, lambda s: Measurement(1.0, 1.0, 316, 0.05), 4)
    assert opt.converged
    assert opt.centre == SPACE.max_setting()
    assert opt.next_setting() == SPACE.max_setting()


def test_stale_measurements_are_not_used_and_are_measured_again() -> None:
    surface = bowl()
    opt = EcoGD(SPACE, REF, batch_scan=False, loop_steps=10_000, history_steps=20)
    assert first_converged_at(opt, surface, OPT, limit=500) is not None
    start = opt.measurements
    proposed = drive(opt, surface, 200)
    # with no jumps the optimum stays the centre, and each side is measured again every time it
    # goes stale, never sooner
    assert opt.centre == OPT
    assert opt.jumps == 0
    for side in SPACE.neighbours(OPT):
        at = [i for i, s in enumerate(proposed) if s == side]
        assert len(at) >= 8
        gaps = [b - a for a, b in pairwise(at)]
        assert all(20 <= g <= 27 for g in gaps), gaps
    assert proposed.count(OPT) > 100
    assert opt.measurements == start + 200


def test_a_measurement_is_fresh_for_history_steps_windows_then_measured_again() -> None:
    top = SPACE.max_setting()
    first_side = SPACE.neighbours(top)[0]
    opt = EcoGD(SPACE, REF, batch_scan=False, history_steps=12, loop_steps=10_000)
    flat = table({}, default=1.0)
    # window 0 measures the centre, window 1 the first side; then the flat centre is served
    assert drive(opt, flat, 13)[1] == first_side
    assert opt.fresh_cost(first_side) == 1.0  # 11 windows old
    assert opt.next_setting() == top
    step(opt, flat)
    assert opt.fresh_cost(first_side) is None  # 12 windows old: stale
    assert opt.next_setting() == first_side


def test_loop_detection_jumps_outside_the_six_neighbourhood() -> None:
    surface = bowl()
    opt = EcoGD(SPACE, REF, batch_scan=False, rng=random.Random(3))
    assert first_converged_at(opt, surface, OPT, limit=500) is not None
    jumps = 0
    for _ in range(300):
        centre, since = opt.centre, opt.steps_since_move
        step(opt, surface)
        if opt.jumps > jumps:
            jumps = opt.jumps
            # the jump comes after 10 windows without a move, from a centre that won its round
            assert since >= 9
            d = (
                opt.centre.cpu_step - centre.cpu_step,
                opt.centre.gpu_step - centre.gpu_step,
                opt.centre.batch - centre.batch,
            )
            assert max(map(abs, d)) == 1
            assert sum(map(abs, d)) >= 2
            assert opt.next_setting() == opt.centre  # the jump target is measured afresh
    assert jumps >= 5
    assert opt.best() == OPT


def test_no_jumps_when_the_loop_threshold_is_never_reached() -> None:
    opt = EcoGD(SPACE, REF, batch_scan=False, loop_steps=10_000)
    drive(opt, bowl(), 400)
    assert opt.jumps == 0
    assert opt.centre == OPT


def test_arrival_change_over_ten_percent_resets_and_the_new_optimum_is_found() -> None:
    fast, slow = Setting(20, 12, 14), Setting(8, 6, 6)
    opt = EcoGD(SPACE, REF, batch_scan=False, rng=random.Random(1))
    drive(opt, bowl(fast, 0.05), 150)
    assert opt.best() == fast
    assert opt.resets == 0
    measured = [s for s in SPACE.all_settings() if opt.fresh_cost(s) is not None]
    assert len(measured) > 5
    step(opt, bowl(slow, 0.09))
    assert opt.resets == 1
    kept = [s for s in SPACE.all_settings() if opt.fresh_cost(s) is not None]
    assert len(kept) == 1  # only the window measured under the new rate
    drive(opt, bowl(slow, 0.09), 250)
    assert opt.resets == 1
    assert opt.best() == slow


@pytest.mark.parametrize(("factor", "resets"), [(1.09, 0), (1 / 1.09, 0), (1.11, 1), (0.89, 1)])
def test_reset_threshold_is_ten_percent_of_the_rate(factor: float, resets: int) -> None:
    opt = EcoGD(SPACE, REF, batch_scan=False)
    drive(opt, bowl(interval_s=0.05), 3)
    # the rate changes by `factor`, so the interval by its reciprocal
    drive(opt, bowl(interval_s=0.05 / factor), 3)
    assert opt.resets == resets


def test_clamps_are_respected_when_the_optimum_lies_below_them() -> None:
    opt = EcoGD(SPACE, REF, batch_scan=False, rng=random.Random(5))
    proposed = drive(opt, bowl(Setting(0, 0, 1)), 400)
    assert all(SPACE.contains(s) for s in proposed)
    assert opt.best() == SPACE.min_setting()
    assert min(s.cpu_step for s in proposed) == 4
    assert min(s.batch for s in proposed) == 4


def test_random_surfaces_never_lead_outside_the_space() -> None:
    space = SearchSpace(cpu_steps=6, gpu_steps=5, max_batch=5, min_cpu_step=2, min_batch=2)
    noise = random.Random(11)
    costs = {s: noise.uniform(0.2, 2.0) for s in space.all_settings()}
    for seed in range(4):
        opt = EcoGD(space, REF, batch_scan=False, rng=random.Random(seed))
        drive(opt, table(costs), 300, space)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"history_steps": 10}, "history_steps"),
        ({"loop_steps": 0}, "loop_steps"),
        ({"arrival_change": 0.0}, "arrival_change"),
        ({"arrival_change": -0.1}, "arrival_change"),
        ({"arrival_change": math.nan}, "arrival_change"),
        ({"rescan_steps": 0}, "rescan_steps"),
    ],
)
def test_invalid_configuration_names_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        EcoGD(SPACE, REF, batch_scan=False, **kwargs)  # type: ignore[arg-type]


def test_observing_outside_the_space_is_refused() -> None:
    opt = EcoGD(SPACE, REF, batch_scan=False)
    with pytest.raises(ValueError, match=r"^setting: "):
        opt.observe(Setting(0, 0, 1), Measurement(1.0, 1.0, 316, 0.05))


def test_same_seed_same_trajectory() -> None:
    def run(seed: int) -> list[Setting]:
        noise = random.Random(99)

        def noisy(s: Setting) -> Measurement:
            m = bowl()(s)
            return Measurement(
                m.energy_j_per_request * noise.uniform(0.97, 1.03), m.latency_s, 316, 0.05
            )

        opt = EcoGD(SPACE, REF, batch_scan=False, rng=random.Random(seed))
        return drive(opt, noisy, 400)

    assert run(7) == run(7)
    assert run(7) != run(8)


NOTCH_BASE = Setting(18, 10, 15)


def notched(base: Setting = NOTCH_BASE, notch_batch: int = 10) -> Surface:
    """A bowl in every axis with its minimum at `base`, plus a deep notch at one batch size (a
    divisor of the burst size under bursty arrivals): the global minimum lies at the notch, out
    of reach of one batch step at a time from the bowl's bottom."""
    bowl_at = bowl(base)

    def measure(s: Setting) -> Measurement:
        m = bowl_at(s)
        if s.batch == notch_batch:
            return Measurement(m.energy_j_per_request * 0.6, m.latency_s * 0.6, 316, 0.05)
        return m

    return measure


def test_the_batch_scan_comes_first_and_measures_every_batch_at_the_top_clocks() -> None:
    opt = EcoGD(SPACE, REF)
    probed = drive(opt, bowl(), SPACE.max_batch - SPACE.min_batch + 1)
    top = SPACE.max_setting()
    assert probed == [Setting(top.cpu_step, top.gpu_step, b) for b in range(4, 17)]
    assert opt.centre == Setting(top.cpu_step, top.gpu_step, OPT.batch)  # the scan's cheapest
    assert not opt.converged


def test_the_batch_scan_reaches_a_notch_that_hill_climbing_cannot() -> None:
    surface = notched()
    target = Setting(18, 10, 10)
    scanning, published = EcoGD(SPACE, REF), EcoGD(SPACE, REF, batch_scan=False)
    drive(scanning, surface, 300)
    drive(published, surface, 300)
    assert scanning.best() == target
    assert published.best() != target
    assert published.best().batch != 10


def test_a_win_far_from_every_earlier_scan_scans_again() -> None:
    opt = EcoGD(SPACE, REF, loop_steps=10_000)
    drive(opt, notched(), 400)
    assert opt.converged
    scanned = opt.scanned_clocks
    # the top clocks, then clocks at least 3 steps from them on the way down to (18, 10)
    assert (24, 14) in scanned
    assert len(scanned) >= 2
    for a, b in itertools.combinations(scanned, 2):
        assert max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= 3


def test_wins_near_the_last_scan_do_not_scan_again() -> None:
    opt = EcoGD(SPACE, REF, loop_steps=10_000, rescan_steps=100)
    drive(opt, notched(), 300)
    assert opt.scanned_clocks == ((24, 14),)
    # the first scan found the notch; the climb in the clocks keeps it
    assert opt.best() == Setting(18, 10, 10)


def test_a_reset_scans_again() -> None:
    opt = EcoGD(SPACE, REF)
    drive(opt, bowl(interval_s=0.05), 100)
    centre = opt.centre
    trigger = step(opt, bowl(interval_s=0.09))  # kept: measured under the new rate
    assert opt.resets == 1
    line = [trigger, opt.next_setting()]
    for _ in range(SPACE.max_batch - SPACE.min_batch - 1):
        step(opt, bowl(interval_s=0.09))
        line.append(opt.next_setting())
    assert {s.batch for s in line} == set(range(4, 17))
    assert {(s.cpu_step, s.gpu_step) for s in line} == {(centre.cpu_step, centre.gpu_step)}


def test_scanning_converges_on_a_convex_surface_and_stays_in_the_space() -> None:
    for seed in range(5):
        opt = EcoGD(SPACE, REF, rng=random.Random(seed))
        assert first_converged_at(opt, bowl(), OPT, 400) is not None
