"""Profiling Keras models: the same device-profile JSON and statistics as the torch backend."""

from __future__ import annotations

import pytest

from inferedge.core.errors import ModelRefError
from inferedge.dnn.frameworks import get_backend
from inferedge.dnn.protocols import ProfileRequest
from inferedge.dnn.tensorflow import profiler
from inferedge.dnn.tensorflow.backend import KerasBackend, prepare
from tests.dnn import profiling_helpers as helpers

SHAPE = (3, 16, 16)
PLAIN = "tests.dnn.tensorflow.models:plain_cnn"


def request(ref: str = PLAIN, **overrides: object) -> ProfileRequest:
    return helpers.profile_request(ref, SHAPE, **overrides)


def test_get_backend_gives_the_keras_backend() -> None:
    assert isinstance(get_backend("tensorflow"), KerasBackend)


def test_profile_of_a_small_model_is_valid() -> None:
    calls: list[tuple[int, int]] = []
    backend = KerasBackend()
    profile = backend.profile(request(), progress=lambda *call: calls.append(call))

    helpers.check_small_profile(backend, profile, request(), calls)
    assert (profile.model.name, profile.model.framework, profile.model.tracing) == (
        "plain_cnn",
        "tensorflow",
        "keras",
    )


def test_latency_statistics_and_emulated_slowdown(monkeypatch: pytest.MonkeyPatch) -> None:
    helpers.fake_clock(monkeypatch, range(1, 21))
    profile = KerasBackend().profile(
        request(repeats=20, emulate_slowdown=2.0, memory_bytes=1234, batch_sizes=(1,))
    )
    helpers.check_doubled_latencies(profile)


def test_energy_per_batch_comes_from_the_sensor_and_is_not_slowed_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sensor = helpers.fake_sensor(monkeypatch)
    _, graph = prepare(PLAIN, 10, SHAPE)
    segments = profiler.measure_segments(
        graph, request(repeats=4, emulate_slowdown=3.0), model_name="plain", sensor=sensor
    )
    assert sensor.measurements == graph.num_cuts * 2
    # 12 mJ over the 4 runs of each energy pass, whatever the slowdown.
    assert {m.energy_mj for s in segments for m in s.measurements} == {3.0}


def test_energy_is_null_without_a_sensor() -> None:
    helpers.check_energy_follows_the_sensor(KerasBackend().profile(request(batch_sizes=(1,))))


def test_a_batch_size_the_model_cannot_run_is_a_clear_error() -> None:
    fixed = "tests.dnn.tensorflow.models:fixed_batch"
    with pytest.raises(
        ModelRefError, match=r"^model 'fixed_batch' fails in segment \d+ at batch size 2"
    ):
        KerasBackend().profile(request(fixed))
