"""The emulated Xavier NX: clock tables, monotone service and power, and its calibration."""

from __future__ import annotations

import random
from dataclasses import replace
from itertools import pairwise
from typing import Any

import pytest

from inferedge.core.emulated_device import ClockTable, xavier_nx
from inferedge.core.knobs import Setting
from inferedge.core.knobs import xavier_nx as xavier_space
from inferedge.local.arrivals import Fixed
from inferedge.local.knob_simulator import simulate_window

# published at maximum settings, ResNet-50: inter-arrival s -> (L0 s, E0 in the meter's unit)
PUBLISHED = {0.05: (0.415, 0.00804), 0.07: (0.564, 0.00709), 0.09: (0.695, 0.00669)}
TOLERANCE = 0.15


def test_xavier_tables_span_the_published_ranges() -> None:
    device = xavier_nx()
    assert len(device.cpu) == 25
    assert (device.cpu.mhz[0], device.cpu.top_mhz) == (115.0, 1907.0)
    assert len(device.gpu) == 15
    assert (device.gpu.mhz[0], device.gpu.top_mhz) == (115.0, 1109.0)
    assert device.max_batch == 16
    assert device.emulated is True


def test_calibration_reproduces_published_l0_and_e0_ratios() -> None:
    device, top = xavier_nx(), xavier_space().max_setting()
    seen = {
        gap: simulate_window(device, top, Fixed(gap), rng=random.Random(0)).measurement
        for gap in PUBLISHED
    }
    e_first, pub_first = seen[0.05].energy_j_per_request, PUBLISHED[0.05][1]
    for gap, (l0, e0) in PUBLISHED.items():
        assert seen[gap].latency_s == pytest.approx(l0, rel=TOLERANCE)
        ratio = seen[gap].energy_j_per_request / e_first
        assert ratio == pytest.approx(e0 / pub_first, rel=TOLERANCE)
    # the emulation is closer than the tolerance: within 3 % on every figure
    assert seen[0.09].energy_j_per_request / e_first == pytest.approx(0.832, rel=0.03)
    assert seen[0.05].latency_s == pytest.approx(0.415, rel=0.03)


def test_higher_clocks_serve_faster_and_draw_more_power() -> None:
    device = xavier_nx()
    for batch in (1, 8, 16):
        for gpu in (0, 7, 14):
            services = [device.service_s(Setting(c, gpu, batch)) for c in range(25)]
            powers = [device.power_w(Setting(c, gpu, batch), busy=True) for c in range(25)]
            assert all(b < a for a, b in pairwise(services))
            assert all(b > a for a, b in pairwise(powers))
        services = [device.service_s(Setting(24, g, batch)) for g in range(15)]
        powers = [device.power_w(Setting(24, g, batch), busy=True) for g in range(15)]
        assert all(b < a for a, b in pairwise(services))
        assert all(b > a for a, b in pairwise(powers))


def test_service_formula_at_the_top_and_batches_amortise_overhead() -> None:
    device = xavier_nx()
    assert device.service_s(Setting(24, 14, 16)) == pytest.approx(0.035)
    assert device.service_s(Setting(24, 14, 1)) == pytest.approx(0.005)
    per_sample = [device.service_s(Setting(24, 14, b)) / b for b in range(1, 17)]
    assert all(b < a for a, b in pairwise(per_sample))


def test_idle_draws_less_than_busy_and_memory_adds_power() -> None:
    device, setting = xavier_nx(), Setting(12, 7, 8)
    assert device.power_w(setting, busy=False) < device.power_w(setting, busy=True, memory_level=0)
    low = device.power_w(setting, busy=True, memory_level=0.0)
    assert device.power_w(setting, busy=True, memory_level=1.0) == pytest.approx(low + 2.5)
    assert device.memory_level(0.0) == 0.0
    assert device.memory_level(0.5) == 1.0


def test_energy_optimal_clocks_lie_inside_the_tables() -> None:
    # static power makes the lowest clocks wasteful, rising voltage the highest
    device = xavier_nx()

    def joules(cpu: int, gpu: int) -> float:
        setting = Setting(cpu, gpu, 16)
        return device.power_w(setting, busy=True) * device.service_s(setting)

    best = min(((c, g) for c in range(25) for g in range(15)), key=lambda cg: joules(*cg))
    assert 0 < best[0] < 24
    assert 0 < best[1] < 14


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("max_batch", {"max_batch": 0}),
        ("overhead_s", {"overhead_s": -1.0}),
        ("gpu_dynamic_max_w", {"gpu_dynamic_max_w": float("nan")}),
        ("memory_full", {"memory_full": 0.01}),
        ("v_low", {"v_low": 1.5}),
        ("service_jitter", {"service_jitter": -0.1}),
    ],
)
def test_bad_device_fields_are_named(field: str, change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        replace(xavier_nx(), **change)


def test_bad_tables_and_settings_are_named() -> None:
    with pytest.raises(ValueError, match=r"^mhz:"):
        ClockTable((100.0, 100.0))
    with pytest.raises(ValueError, match=r"^mhz:"):
        ClockTable(())
    with pytest.raises(ValueError, match=r"^steps:"):
        ClockTable.even(100.0, 200.0, 1)
    device = xavier_nx()
    with pytest.raises(ValueError, match=r"^step:"):
        device.service_s(Setting(25, 0, 1))
    with pytest.raises(ValueError, match=r"^batch:"):
        device.power_w(Setting(0, 0, 17), busy=True)
    with pytest.raises(ValueError, match=r"^memory_level:"):
        device.power_w(Setting(0, 0, 1), busy=True, memory_level=2.0)


def test_step_at_least_rounds_up_and_saturates() -> None:
    table = ClockTable((100.0, 200.0, 300.0))
    assert table.step_at_least(0.0) == 0
    assert table.step_at_least(150.0) == 1
    assert table.step_at_least(200.0) == 1
    assert table.step_at_least(1000.0) == 2
