"""Profiling Keras models: the same device-profile JSON and statistics as the torch backend."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from types import SimpleNamespace

import pytest

from inferedge.core.errors import ModelRefError
from inferedge.core.profile import dump_profile, parse_profile
from inferedge.dnn import energy
from inferedge.dnn.backend import ProfileRequest, get_backend
from inferedge.dnn.tensorflow import profiler
from inferedge.dnn.tensorflow.backend import KerasBackend, prepare

SHAPE = (3, 16, 16)
PLAIN = "tests.tensorflow.models:plain_cnn"


def request(ref: str = PLAIN, **overrides: object) -> ProfileRequest:
    fields: dict[str, object] = {
        "model_ref": ref,
        "num_classes": 10,
        "input_shape": SHAPE,
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


def test_get_backend_gives_the_keras_backend() -> None:
    assert isinstance(get_backend("tensorflow"), KerasBackend)


def test_profile_of_a_small_model_is_valid() -> None:
    calls: list[tuple[int, int]] = []
    backend = KerasBackend()
    profile = backend.profile(request(), progress=lambda *call: calls.append(call))

    assert parse_profile(dump_profile(profile), "plain.json") == profile
    assert profile.cut_points == backend.cut_points(PLAIN, 10, SHAPE)
    assert (profile.model.name, profile.model.source, profile.model.tracing) == (
        "plain_cnn",
        PLAIN,
        "keras",
    )
    assert (profile.model.framework, profile.device.framework) == ("tensorflow", "tensorflow")
    assert profile.model.input_shape == SHAPE
    assert profile.device.name == "test-cpu"
    assert profile.device.emulated_slowdown == 1.0
    total = profile.num_cuts * 2
    assert calls == [(done, total) for done in range(1, total + 1)]
    assert sum(s.flops for s in profile.segments) == profile.cut_points[-1].cum_flops
    assert sum(s.param_bytes for s in profile.segments) == profile.cut_points[-1].cum_param_bytes
    for segment in profile.segments:
        one, two = segment.at(1), segment.at(2)
        assert one.samples == two.samples == 3
        assert 0 < one.median_ms <= one.p95_ms
        # Peak memory is the liveness estimate, linear in the batch size.
        assert two.peak_memory_bytes == 2 * one.peak_memory_bytes > 0


def test_latency_statistics_and_emulated_slowdown(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SimpleNamespace(perf_counter_ns=FakeClock(range(1, 21)), perf_counter=time.perf_counter)
    monkeypatch.setattr(profiler, "time", clock)
    profile = KerasBackend().profile(
        request(repeats=20, emulate_slowdown=2.0, memory_bytes=1234, batch_sizes=(1,))
    )
    assert profile.device.emulated_slowdown == 2.0
    assert profile.device.memory_bytes == 1234
    for segment in profile.segments:
        for m in segment.measurements:
            # Runs of 1..20 ms: median 10.5, nearest-rank p95 the 19th; both doubled.
            assert (m.median_ms, m.p95_ms) == pytest.approx((21.0, 38.0))


class FakeSensor(energy.EnergySensor):
    def __init__(self) -> None:
        super().__init__("fake")
        self.measurements = 0

    def start(self) -> None:
        self.measurements += 1

    def stop(self) -> float:
        return 12.0


def test_energy_per_batch_comes_from_the_sensor_and_is_not_slowed_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(profiler, "ENERGY_WINDOW_S", 0.0)
    _, graph = prepare(PLAIN, 10, SHAPE)
    sensor = FakeSensor()
    segments = profiler.measure_segments(
        graph, request(repeats=4, emulate_slowdown=3.0), model_name="plain", sensor=sensor
    )
    assert sensor.measurements == graph.num_cuts * 2
    # 12 mJ over the 4 runs of each energy pass, whatever the slowdown.
    assert {m.energy_mj for s in segments for m in s.measurements} == {3.0}


def test_energy_is_null_without_a_sensor() -> None:
    profile = KerasBackend().profile(request(batch_sizes=(1,)))
    sensor = energy.detect_energy_sensor()
    energies = [m.energy_mj for s in profile.segments for m in s.measurements]
    if sensor is None:
        assert profile.device.energy_sensor is None
        assert energies == [None] * len(energies)
    else:
        assert profile.device.energy_sensor == sensor.name
        assert None not in energies


def test_a_batch_size_the_model_cannot_run_is_a_clear_error() -> None:
    fixed = "tests.tensorflow.models:fixed_batch"
    with pytest.raises(
        ModelRefError, match=r"^model 'fixed_batch' fails in segment \d+ at batch size 2"
    ):
        KerasBackend().profile(request(fixed))
