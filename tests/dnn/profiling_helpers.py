"""Profiling tests of every backend: a request, fakes (clock, energy sensor), shared checks."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from types import SimpleNamespace

import pytest

from inferedge.core.profile import MeasuredProfile, dump_profile, parse_profile
from inferedge.dnn import energy, profiling
from inferedge.dnn.protocols import Backend, ProfileRequest


def profile_request(
    ref: str, input_shape: tuple[int, ...], /, **overrides: object
) -> ProfileRequest:
    """A small, fast request for `ref` (10 classes, batch sizes 1 and 2); `overrides` replace
    any field, `input_shape` included."""
    fields: dict[str, object] = {
        "model_ref": ref,
        "num_classes": 10,
        "input_shape": input_shape,
        "batch_sizes": (1, 2),
        "warmup": 1,
        "repeats": 3,
        "device_name": "test-cpu",
    }
    return ProfileRequest(**{**fields, **overrides})  # type: ignore[arg-type]


class FakeClock:
    """perf_counter_ns whose timed runs last the given milliseconds, in turn."""

    def __init__(self, durations_ms: Iterable[float]) -> None:
        self._durations = itertools.cycle(durations_ms)
        self._now = 0
        self._running = False

    def __call__(self) -> int:
        if self._running:
            self._now += int(next(self._durations) * 1_000_000)
        self._running = not self._running
        return self._now


def fake_clock(monkeypatch: pytest.MonkeyPatch, durations_ms: Iterable[float]) -> None:
    """Make every timed run of the profiler last the given milliseconds, in turn."""
    clock = SimpleNamespace(
        perf_counter_ns=FakeClock(durations_ms), perf_counter=time.perf_counter, sleep=time.sleep
    )
    monkeypatch.setattr(profiling, "time", clock)


class FakeSensor(energy.EnergySensor):
    """A sensor that reads 12 mJ for every measurement and counts the measurements."""

    def __init__(self) -> None:
        super().__init__("fake")
        self.measurements = 0

    def start(self) -> None:
        self.measurements += 1

    def stop(self) -> float:
        return 12.0


def fake_sensor(monkeypatch: pytest.MonkeyPatch) -> FakeSensor:
    """A `FakeSensor`, with the energy pass shortened to its minimum number of runs."""
    monkeypatch.setattr(profiling, "ENERGY_WINDOW_S", 0.0)
    return FakeSensor()


def check_small_profile(
    backend: Backend,
    profile: MeasuredProfile,
    request: ProfileRequest,
    calls: list[tuple[int, int]],
) -> None:
    """What every backend's profile of `request` (batch sizes 1 and 2, 3 repeats, no slowdown)
    must be: valid JSON, the backend's own cut points, every segment measured, progress
    reported once per measurement, and peak memory linear in the batch size."""
    assert parse_profile(dump_profile(profile), "profile.json") == profile
    assert profile.cut_points == backend.cut_points(
        request.model_ref, request.num_classes, request.input_shape
    )
    assert profile.model.source == request.model_ref
    assert profile.model.input_shape == request.input_shape
    assert profile.model.framework == profile.device.framework
    assert profile.device.name == request.device_name
    assert profile.device.emulated_slowdown == 1.0
    total = profile.num_cuts * 2
    assert calls == [(done, total) for done in range(1, total + 1)]
    assert sum(s.flops for s in profile.segments) == profile.cut_points[-1].cum_flops
    assert sum(s.param_bytes for s in profile.segments) == profile.cut_points[-1].cum_param_bytes
    for segment in profile.segments:
        one, two = segment.at(1), segment.at(2)
        assert one.samples == two.samples == 3
        assert 0 < one.median_ms <= one.p95_ms
        # On a CPU peak memory is the liveness estimate, linear in the batch size.
        assert two.peak_memory_bytes == 2 * one.peak_memory_bytes > 0


def check_doubled_latencies(profile: MeasuredProfile) -> None:
    """A profile timed by `fake_clock(range(1, 21))` with 20 repeats and slowdown 2, memory
    overridden to 1234 bytes."""
    assert profile.device.emulated_slowdown == 2.0
    assert profile.device.memory_bytes == 1234
    for segment in profile.segments:
        for m in segment.measurements:
            # Runs of 1..20 ms: median 10.5, nearest-rank p95 the 19th; both doubled.
            assert (m.median_ms, m.p95_ms) == pytest.approx((21.0, 38.0))


def check_energy_follows_the_sensor(profile: MeasuredProfile) -> None:
    """Energies are measured where this machine has a sensor, and null everywhere else."""
    sensor = energy.detect_energy_sensor()
    energies = [m.energy_mj for s in profile.segments for m in s.measurements]
    if sensor is None:
        assert profile.device.energy_sensor is None
        assert energies == [None] * len(energies)
    else:
        assert profile.device.energy_sensor == sensor.name
        assert None not in energies
