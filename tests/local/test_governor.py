"""The default DVFS governors, modelled batch by batch (emulated)."""

from __future__ import annotations

import pytest

from inferedge.core.emulated_device import xavier_nx
from inferedge.core.knobs import Measurement, Setting
from inferedge.local.governor import DefaultGovernors, GovernorModel

DEVICE = xavier_nx()
TOP = Setting(24, 14, 8)


def test_the_signal_halves_every_half_life_of_idle() -> None:
    model = GovernorModel(half_life_s=0.032)
    assert model.decay(0.8, 0.032) == pytest.approx(0.4)
    assert model.decay(0.8, 0.064) == pytest.approx(0.2)
    assert model.decay(0.8, 0.0) == 0.8
    assert model.decay(0.8, -1.0) == 0.8  # no time, no decay


def test_a_busy_device_stays_at_the_top_clocks() -> None:
    run = GovernorModel().serve(DEVICE, 8, 1.0, memory_level=1.0)
    assert run.duration_s == pytest.approx(DEVICE.service_s(TOP))
    assert run.energy_j == pytest.approx(DEVICE.power_w(TOP, busy=True) * run.duration_s)
    assert run.cpu_mhz == pytest.approx(DEVICE.cpu.top_mhz)
    assert run.gpu_mhz == pytest.approx(DEVICE.gpu.top_mhz)
    assert run.utilisation == pytest.approx(1.0)


def test_after_idle_a_batch_starts_low_and_ramps_up() -> None:
    model = GovernorModel()
    cold = model.serve(DEVICE, 8, 0.0, memory_level=1.0)
    warm = model.serve(DEVICE, 8, 0.5, memory_level=1.0)
    top = DEVICE.service_s(TOP)
    assert cold.duration_s > warm.duration_s > top
    assert cold.cpu_mhz < warm.cpu_mhz < DEVICE.cpu.top_mhz
    assert 0.0 < cold.utilisation < 1.0
    # the signal rose while the batch ran
    assert cold.utilisation > 0.5


def test_jitter_scales_the_work() -> None:
    model = GovernorModel()
    base = model.serve(DEVICE, 4, 1.0, memory_level=0.5)
    slower = model.serve(DEVICE, 4, 1.0, memory_level=0.5, jitter=1.5)
    assert slower.duration_s == pytest.approx(1.5 * base.duration_s)


@pytest.mark.parametrize("field", ["half_life_s", "headroom", "period_s"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_parameters_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        GovernorModel(**{field: value})


def test_default_governors_are_a_fixed_batch_converged_from_the_first_window() -> None:
    governors = DefaultGovernors(DEVICE, batch=16)
    assert not governors.converged
    assert governors.next_setting() == Setting(24, 14, 16)
    governors.observe(Setting(24, 14, 16), Measurement(0.03, 0.4, 316, 0.05))
    assert governors.converged
    assert governors.measurements == 1
    assert governors.best() == Setting(24, 14, 16)
    with pytest.raises(ValueError, match=r"^batch: "):
        DefaultGovernors(DEVICE, batch=17)
