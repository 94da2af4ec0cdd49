"""The simpy edge server on the emulated device, and tuning optimisers against it."""

from __future__ import annotations

import random

import pytest

from inferedge.core.ecogd import EcoGD
from inferedge.core.emulated_device import xavier_nx
from inferedge.core.knob_search import GridSearch, MaxSettings
from inferedge.core.knobs import Setting
from inferedge.core.knobs import xavier_nx as xavier_space
from inferedge.local.arrivals import Bursty, Fixed, Poisson
from inferedge.local.governor import DefaultGovernors, GovernorModel
from inferedge.local.knob_simulator import measure_reference, simulate_window, tune

TOP = Setting(24, 14, 16)
TOP_AT_5 = Setting(24, 14, 5)


def test_window_keeps_the_requests_after_warmup() -> None:
    window = simulate_window(xavier_nx(), TOP, Fixed(0.05), rng=random.Random(0))
    assert window.measurement.requests == 316
    assert window.measurement.arrival_interval_s == pytest.approx(0.05)
    assert window.emulated is True
    short = simulate_window(
        xavier_nx(), TOP, Fixed(0.05), rng=random.Random(0), requests=32, warmup=0
    )
    assert short.measurement.requests == 32
    # from an empty queue: the kth request of a batch waits for 16 - k more, then 35 ms
    assert short.measurement.latency_s == pytest.approx(7.5 * 0.05 + 0.035)
    assert short.batches == 2


def test_latency_includes_the_wait_for_a_batch() -> None:
    device = xavier_nx()
    for batch in (1, 4, 16):
        setting = Setting(24, 14, batch)
        # a window of whole batches: 6 x 16 warm-up, 20 x 16 kept
        window = simulate_window(
            device, setting, Fixed(0.05), rng=random.Random(0), requests=320, warmup=96
        )
        expected = (batch - 1) / 2 * 0.05 + device.service_s(setting)
        assert window.measurement.latency_s == pytest.approx(expected)
        assert window.p95_s == pytest.approx((batch - 1) * 0.05 + device.service_s(setting))


def test_max_wait_serves_partial_batches() -> None:
    device = xavier_nx()
    window = simulate_window(
        device, TOP, Fixed(0.05), rng=random.Random(0), max_wait_s=0.22, requests=100, warmup=20
    )
    # the oldest waits 0.22 s, so a batch holds 5 requests (0, 50, ..., 200 ms) and they wait
    # 0.12 s on average, then are served as a batch of 5
    assert window.measurement.latency_s == pytest.approx(0.12 + device.service_s(TOP_AT_5))
    assert window.batches == 20


def test_energy_is_power_integrated_over_busy_and_idle_time() -> None:
    device = xavier_nx()
    window = simulate_window(device, TOP, Fixed(0.05), rng=random.Random(0))
    span = window.busy_s + window.idle_s
    first_arrival, last_done = 100 * 0.05 + 0.05, 416 * 0.05 + 0.035
    assert span == pytest.approx(last_done - first_arrival)
    # in steady state every batch starts 800 ms after the last, busy 35 ms of it
    level = device.memory_level(0.035 / 0.8)
    busy_w = device.power_w(TOP, busy=True, memory_level=level)
    assert window.busy_energy_j == pytest.approx(busy_w * window.busy_s)
    assert window.idle_energy_j == pytest.approx(device.power_w(TOP, busy=False) * window.idle_s)
    # per request: a 16th of one batch's busy energy
    assert window.measurement.energy_j_per_request == pytest.approx(busy_w * 0.035 / 16)


def test_same_seed_same_window_and_jitter_varies_it() -> None:
    device = xavier_nx(service_jitter=0.05)
    setting, pattern = Setting(10, 8, 6), Poisson(0.06)
    first = simulate_window(device, setting, pattern, rng=random.Random(7))
    again = simulate_window(device, setting, pattern, rng=random.Random(7))
    other = simulate_window(device, setting, pattern, rng=random.Random(8))
    assert first == again
    assert first.measurement != other.measurement


def test_bursts_fill_batches_at_once() -> None:
    window = simulate_window(
        xavier_nx(), Setting(24, 14, 10), Bursty(10, 0.5), rng=random.Random(0), requests=300
    )
    device = xavier_nx()
    assert window.measurement.latency_s == pytest.approx(device.service_s(Setting(24, 14, 10)))
    assert window.measurement.arrival_interval_s == pytest.approx(0.05)


def test_overload_builds_a_queue() -> None:
    # the slowest clocks at batch 1 take ~120 ms a request against 50 ms arrivals
    window = simulate_window(xavier_nx(), Setting(0, 0, 1), Fixed(0.05), rng=random.Random(0))
    assert window.measurement.latency_s > 2.0
    assert window.idle_s == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"requests": 0}, "requests"),
        ({"warmup": -1}, "warmup"),
        ({"max_wait_s": 0.0}, "max_wait_s"),
        ({"max_wait_s": float("nan")}, "max_wait_s"),
    ],
)
def test_bad_window_inputs_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        simulate_window(xavier_nx(), TOP, Fixed(0.05), rng=random.Random(0), **kwargs)  # type: ignore[arg-type]


def test_bad_setting_and_window_count_are_named() -> None:
    with pytest.raises(ValueError, match=r"^step:"):
        simulate_window(xavier_nx(), Setting(30, 0, 1), Fixed(0.05), rng=random.Random(0))
    with pytest.raises(ValueError, match=r"^requests:"):
        # one burst of 10 arrives at one instant: no time spanned
        simulate_window(
            xavier_nx(), TOP, Bursty(10, 0.5), rng=random.Random(0), requests=9, warmup=1
        )
    space = xavier_space()
    reference = measure_reference(xavier_nx(), space, Fixed(0.05), rng=random.Random(0))
    with pytest.raises(ValueError, match=r"^windows:"):
        tune(
            MaxSettings(space),
            xavier_nx(),
            Fixed(0.05),
            0,
            rng=random.Random(0),
            reference=reference,
        )


def test_tune_records_every_window_and_max_settings_costs_one() -> None:
    device, space, pattern = xavier_nx(), xavier_space(), Fixed(0.07)
    reference = measure_reference(device, space, pattern, rng=random.Random(0))
    run = tune(MaxSettings(space), device, pattern, 3, rng=random.Random(0), reference=reference)
    assert [w.setting for w in run.windows] == [space.max_setting()] * 3
    assert all(w.cost == pytest.approx(1.0) for w in run.windows)
    assert run.converged_at == 1
    assert run.converged_cost == pytest.approx(1.0)
    assert run.exploration_cost == pytest.approx(0.0)
    assert run.mean_ms == pytest.approx(1000 * reference.latency_s)
    assert run.emulated is True


def test_ecogd_nearly_matches_grid_search_with_far_fewer_windows() -> None:
    # fixed 50 ms on the emulated Xavier NX: grid search measures all 3,003 settings and finds
    # cost 0.669 at (cpu 20, gpu 9, batch 4); EcoGD from the maximum settings first converges
    # after 67 windows to the same setting, paying ~7 in excess cost on the way against ~684
    device, space, pattern = xavier_nx(), xavier_space(), Fixed(0.05)
    reference = measure_reference(device, space, pattern, rng=random.Random(0))
    grid = tune(
        GridSearch(space, reference),
        device,
        pattern,
        space.size,
        rng=random.Random(1),
        reference=reference,
    )
    eco = tune(
        EcoGD(space, reference, rng=random.Random(2)),
        device,
        pattern,
        120,
        rng=random.Random(1),
        reference=reference,
    )
    assert grid.converged_at == 3003
    assert grid.converged_cost == pytest.approx(0.669, abs=0.005)
    assert eco.converged_at is not None
    assert eco.converged_at <= 100
    assert eco.converged_cost <= 1.10 * grid.converged_cost
    assert eco.exploration_cost < 0.05 * grid.exploration_cost
    # the optimum trades ~12 % more energy per request than E0 for a quarter of L0
    assert eco.energy_j_per_request < 1.2 * reference.energy_j_per_request
    assert eco.mean_ms < 0.3 * 1000 * reference.latency_s


def test_the_default_governors_run_the_clocks_and_cost_more_than_the_tuned_optimum() -> None:
    device, space, pattern = xavier_nx(), xavier_space(), Fixed(0.05)
    reference = measure_reference(device, space, pattern, rng=random.Random(0))
    governors = DefaultGovernors(device, batch=8)
    assert governors.next_setting() == Setting(24, 14, 8)
    run = tune(
        governors, device, pattern, 3, rng=random.Random(0), reference=reference,
        governor=GovernorModel(),
    )  # fmt: skip
    assert run.converged_at == 1
    assert run.best.batch == 8
    final = run.final
    # batches start after idle at low clocks and ramp up: slower than at the top clocks
    assert device.cpu.at(0) < final.cpu_mhz < device.cpu.top_mhz
    assert device.gpu.at(0) < final.gpu_mhz < device.gpu.top_mhz
    fixed = simulate_window(device, Setting(24, 14, 8), pattern, rng=random.Random(0))
    assert final.busy_s > fixed.busy_s
    # idle time is spent at the lowest clocks
    assert final.idle_energy_j == pytest.approx(
        final.idle_s * device.power_w(Setting(0, 0, 8), busy=False)
    )
    tuned = tune(
        EcoGD(space, reference), device, pattern, 120, rng=random.Random(0), reference=reference
    )
    assert tuned.converged_cost < run.converged_cost
