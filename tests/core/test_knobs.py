"""The knob search space, measurements and EcoEdgeInfer's cost."""

from __future__ import annotations

import math

import pytest

from inferedge.core.knobs import (
    Measurement,
    Reference,
    SearchSpace,
    Setting,
    check_in_space,
    cost,
    xavier_nx,
)


def test_setting_is_ordered_and_hashable() -> None:
    a, b = Setting(4, 5, 6), Setting(4, 6, 1)
    assert a < b
    assert sorted([b, a]) == [a, b]
    assert len({a, Setting(4, 5, 6), b}) == 2


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((-1, 0, 1), "cpu_step"),
        ((0, -1, 1), "gpu_step"),
        ((0, 0, 0), "batch"),
        ((True, 0, 1), "cpu_step"),
        ((0, 1.5, 1), "gpu_step"),
    ],
)
def test_setting_rejects_bad_fields(args: tuple[int, int, int], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        Setting(*args)


def test_xavier_nx_matches_the_published_space() -> None:
    space = xavier_nx()
    # 25 CPU steps, 15 GPU steps, batch 1-16, clamped at index 4, 4 and batch 4
    assert space.max_setting() == Setting(24, 14, 16)
    assert space.min_setting() == Setting(4, 4, 4)
    assert space.size == 21 * 11 * 13 == 3003
    assert space.contains(Setting(4, 4, 4))
    assert space.contains(Setting(24, 14, 16))
    assert not space.contains(Setting(3, 4, 4))
    assert not space.contains(Setting(4, 3, 4))
    assert not space.contains(Setting(4, 4, 3))
    assert not space.contains(Setting(25, 4, 4))
    assert not space.contains(Setting(4, 15, 4))
    assert not space.contains(Setting(4, 4, 17))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cpu_steps": 0, "gpu_steps": 3, "max_batch": 4}, "cpu_steps"),
        ({"cpu_steps": 3, "gpu_steps": 0, "max_batch": 4}, "gpu_steps"),
        ({"cpu_steps": 3, "gpu_steps": 3, "max_batch": 0}, "max_batch"),
        ({"cpu_steps": 3, "gpu_steps": 3, "max_batch": 4, "min_cpu_step": 3}, "min_cpu_step"),
        ({"cpu_steps": 3, "gpu_steps": 3, "max_batch": 4, "min_cpu_step": -1}, "min_cpu_step"),
        ({"cpu_steps": 3, "gpu_steps": 3, "max_batch": 4, "min_gpu_step": 5}, "min_gpu_step"),
        ({"cpu_steps": 3, "gpu_steps": 3, "max_batch": 4, "min_batch": 5}, "min_batch"),
        ({"cpu_steps": 3, "gpu_steps": 3, "max_batch": 4, "min_batch": 0}, "min_batch"),
    ],
)
def test_search_space_rejects_bad_fields(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: ") as caught:
        SearchSpace(**kwargs)
    assert "\n" not in str(caught.value)


def test_clamp_moves_each_axis_into_the_clamped_box() -> None:
    space = xavier_nx()
    assert space.clamp(Setting(0, 0, 1)) == Setting(4, 4, 4)
    assert space.clamp(Setting(99, 99, 99)) == Setting(24, 14, 16)
    assert space.clamp(Setting(10, 2, 20)) == Setting(10, 4, 16)
    inside = Setting(7, 8, 9)
    assert space.clamp(inside) == inside


def test_neighbours_are_the_side_neighbours_inside_the_clamps() -> None:
    space = xavier_nx()
    centre = Setting(10, 8, 8)
    found = space.neighbours(centre)
    assert found == (
        Setting(9, 8, 8),
        Setting(11, 8, 8),
        Setting(10, 7, 8),
        Setting(10, 9, 8),
        Setting(10, 8, 7),
        Setting(10, 8, 9),
    )
    # corners keep only the 3 sides that stay inside
    assert set(space.neighbours(space.max_setting())) == {
        Setting(23, 14, 16),
        Setting(24, 13, 16),
        Setting(24, 14, 15),
    }
    assert set(space.neighbours(space.min_setting())) == {
        Setting(5, 4, 4),
        Setting(4, 5, 4),
        Setting(4, 4, 5),
    }


def test_every_neighbour_of_every_setting_is_one_step_away_and_inside() -> None:
    space = SearchSpace(cpu_steps=5, gpu_steps=4, max_batch=4, min_cpu_step=1, min_batch=2)
    for setting in space.all_settings():
        found = space.neighbours(setting)
        interior_axes = sum(
            [
                space.min_cpu_step < setting.cpu_step < space.cpu_steps - 1,
                space.min_gpu_step < setting.gpu_step < space.gpu_steps - 1,
                space.min_batch < setting.batch < space.max_batch,
            ]
        )
        assert len(found) >= 3 + interior_axes
        for n in found:
            assert space.contains(n)
            distance = (
                abs(n.cpu_step - setting.cpu_step)
                + abs(n.gpu_step - setting.gpu_step)
                + abs(n.batch - setting.batch)
            )
            assert distance == 1


def test_offset_returns_none_outside() -> None:
    space = xavier_nx()
    assert space.offset(Setting(4, 4, 4), -1, 0, 0) is None
    assert space.offset(Setting(24, 4, 4), 1, 0, 0) is None
    assert space.offset(Setting(4, 4, 1), 0, 0, -1) is None  # would be batch 0
    assert space.offset(Setting(5, 5, 5), -1, 1, 1) == Setting(4, 6, 6)


def test_all_settings_lists_the_clamped_space_once_in_order() -> None:
    space = xavier_nx()
    settings = list(space.all_settings())
    assert len(settings) == space.size
    assert settings == sorted(set(settings))
    assert all(space.contains(s) for s in settings)
    assert settings[0] == space.min_setting()
    assert settings[-1] == space.max_setting()


def test_check_in_space_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"^setting: .*outside"):
        check_in_space(xavier_nx(), Setting(0, 0, 1))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"energy_j_per_request": math.nan}, "energy_j_per_request"),
        ({"energy_j_per_request": -1.0}, "energy_j_per_request"),
        ({"latency_s": math.inf}, "latency_s"),
        ({"latency_s": -0.1}, "latency_s"),
        ({"requests": 0}, "requests"),
        ({"arrival_interval_s": 0.0}, "arrival_interval_s"),
        ({"arrival_interval_s": -0.05}, "arrival_interval_s"),
    ],
)
def test_measurement_rejects_bad_fields(kwargs: dict[str, float], field: str) -> None:
    good: dict[str, float] = {
        "energy_j_per_request": 0.008,
        "latency_s": 0.4,
        "requests": 316,
        "arrival_interval_s": 0.05,
    }
    with pytest.raises(ValueError, match=f"^{field}: "):
        Measurement(**(good | kwargs))  # type: ignore[arg-type]


def test_measurement_arrival_rate() -> None:
    assert Measurement(0.0, 0.0, 1, 0.05).arrival_rate_hz == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("energy", "latency", "field"),
    [
        (0.0, 0.4, "energy_j_per_request"),
        (math.inf, 0.4, "energy_j_per_request"),
        (0.008, 0.0, "latency_s"),
        (0.008, math.nan, "latency_s"),
    ],
)
def test_reference_must_be_finite_and_positive(energy: float, latency: float, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        Reference(energy, latency)


def test_cost_is_the_mean_of_the_relative_energy_and_latency() -> None:
    # the published ResNet-50 reference at 50 ms inter-arrival
    at_max = Measurement(0.00804, 0.415, 316, 0.05)
    reference = Reference.from_measurement(at_max)
    assert cost(at_max, reference) == pytest.approx(1.0)
    half_energy = Measurement(0.00402, 0.415, 316, 0.05)
    assert cost(half_energy, reference) == pytest.approx(0.75)
    slower = Measurement(0.00402, 0.83, 316, 0.05)
    assert cost(slower, reference) == pytest.approx(0.5 * (0.5 + 2.0))
    assert cost(Measurement(0.0, 0.0, 1, 0.05), reference) == 0.0
