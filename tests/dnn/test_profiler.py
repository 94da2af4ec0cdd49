"""Profiling a torch model: a valid profile, latency statistics, slowdown, energy, device info."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from inferedge.core.errors import InferedgeError, ModelRefError
from inferedge.core.exits import ExitHeadSpec
from inferedge.dnn import profiling as profiling_module
from inferedge.dnn.frameworks import get_backend
from inferedge.dnn.protocols import ProfileRequest
from inferedge.dnn.torch import profiler
from inferedge.dnn.torch.backend import TorchBackend
from inferedge.dnn.torch.device import describe_device
from inferedge.dnn.torch.graph import build_cut_graph
from inferedge.dnn.torch.loader import load_model
from tests.dnn import profiling_helpers as helpers
from tests.dnn.importable import write_module

INPUT = (3, 8, 8)

TINY_PY = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def tiny(num_classes=10):
    return Tiny(num_classes)
"""


@pytest.fixture
def tiny_ref(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A `module:callable` reference to a tiny CNN written to a temp directory."""
    return write_module("inferedge_test_tiny", TINY_PY, tmp_path, monkeypatch) + ":tiny"


def request(ref: str, **overrides: object) -> ProfileRequest:
    return helpers.profile_request(ref, INPUT, **overrides)


def test_profile_of_a_small_model_is_valid(tiny_ref: str) -> None:
    calls: list[tuple[int, int]] = []
    backend = TorchBackend()
    profile = backend.profile(request(tiny_ref), progress=lambda *call: calls.append(call))

    helpers.check_small_profile(backend, profile, request(tiny_ref), calls)
    assert (profile.model.name, profile.model.framework, profile.model.tracing) == (
        "tiny",
        "torch",
        "fx",
    )


def test_energy_is_null_without_a_sensor(tiny_ref: str) -> None:
    helpers.check_energy_follows_the_sensor(
        TorchBackend().profile(request(tiny_ref, batch_sizes=(1,)))
    )


def test_latency_statistics_and_emulated_slowdown(
    tiny_ref: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    helpers.fake_clock(monkeypatch, range(1, 21))
    profile = TorchBackend().profile(
        request(tiny_ref, repeats=20, emulate_slowdown=2.0, memory_bytes=1234)
    )
    helpers.check_doubled_latencies(profile)


def test_energy_per_batch_comes_from_the_sensor(monkeypatch: pytest.MonkeyPatch) -> None:
    sensor = helpers.fake_sensor(monkeypatch)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(144, 10)).eval()
    graph = build_cut_graph(model, torch.randn(1, *INPUT), name="seq")
    segments = profiler.measure_segments(
        graph, request("seq", repeats=4), torch.device("cpu"), model_name="seq", sensor=sensor
    )
    assert sensor.measurements == graph.num_cuts * 2
    # 12 mJ over the 4 runs of each energy pass.
    assert {m.energy_mj for s in segments for m in s.measurements} == {3.0}


class _BatchOfOne(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).reshape(1, 10)


@pytest.fixture
def static_batch_pt2(tiny_ref: str, tmp_path: Path) -> str:
    """A .pt2 of the tiny model (10 classes) that runs at batch size 1 only: its last reshape
    was exported with the batch size written in."""
    module = _BatchOfOne(load_model(tiny_ref, 10, INPUT).module)
    path = tmp_path / "tiny_static.pt2"
    torch.export.save(torch.export.export(module, (torch.randn(1, *INPUT),)), path)
    return str(path)


def test_batch_size_the_model_cannot_run_is_a_clear_error(static_batch_pt2: str) -> None:
    with pytest.raises(ModelRefError, match=r"^model 'tiny_static' fails in segment \d+ at batch "):
        TorchBackend().profile(request(static_batch_pt2))


def test_output_must_match_num_classes(static_batch_pt2: str) -> None:
    with pytest.raises(ModelRefError, match=r"outputs shape \(10,\) per sample, expected \(5,\)"):
        TorchBackend().cut_points(static_batch_pt2, 5, INPUT)


def test_export_profile_records_its_tracing(static_batch_pt2: str) -> None:
    profile = TorchBackend().profile(request(static_batch_pt2, batch_sizes=(1,)))
    assert profile.model.tracing == "export"
    assert profile.model.name == "tiny_static"
    # Served single rows are timed on the modules, so a batch-1-only program still gets them.
    assert profile.served is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_classes", 0),
        ("input_shape", (3, 0, 8)),
        ("batch_sizes", ()),
        ("batch_sizes", (2, 2)),
        ("warmup", -1),
        ("repeats", 0),
        ("emulate_slowdown", 0.5),
        ("memory_bytes", 0),
    ],
)
def test_invalid_requests_are_refused(field: str, value: object) -> None:
    with pytest.raises(InferedgeError, match=f"^invalid profile request: {field} must be "):
        request("resnet18", **{field: value})


def test_backends_by_framework() -> None:
    assert isinstance(get_backend("torch"), TorchBackend)
    assert type(get_backend("tensorflow")).__module__ == "inferedge.dnn.tensorflow.backend"
    with pytest.raises(InferedgeError, match="unknown framework 'jax'"):
        get_backend("jax")


def fake_proc(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_device_description_from_proc(tmp_path: Path) -> None:
    fake_proc(
        tmp_path,
        {
            "proc/cpuinfo": "processor\t: 0\nHardware\t: NVIDIA Tegra\n",
            "proc/meminfo": "MemTotal:        8000 kB\nMemFree:  10 kB\n",
            "proc/device-tree/model": "NVIDIA Jetson Orin Nano Developer Kit\x00",
        },
    )
    info = describe_device(
        "jetson", torch.device("cpu"), energy_sensor="ina3221:VDD_IN", root=tmp_path
    )
    assert info.cpu_model == "NVIDIA Tegra"
    assert info.accelerator == "NVIDIA Jetson Orin Nano Developer Kit"
    assert info.memory_bytes == 8000 * 1024
    assert info.energy_sensor == "ina3221:VDD_IN"
    assert info.framework_version == torch.__version__
    assert info.cores >= 1


def test_device_description_fallbacks_and_override(tmp_path: Path) -> None:
    fake_proc(tmp_path, {"proc/cpuinfo": "model name\t: Fake CPU @ 3GHz\n"})
    info = describe_device(
        "cloud", torch.device("cpu"), emulated_slowdown=3.0, memory_bytes=42, root=tmp_path
    )
    assert info.cpu_model == "Fake CPU @ 3GHz"
    assert info.accelerator is None
    assert info.memory_bytes == 42
    assert info.emulated_slowdown == 3.0
    # No /proc/meminfo under the fake root: the OS's page count still gives the memory.
    assert describe_device("cloud", torch.device("cpu"), root=tmp_path).memory_bytes > 0


def test_the_served_pass_walks_like_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int, int]] = []
    gaps: list[float] = []
    monkeypatch.setattr(
        profiling_module, "time", SimpleNamespace(sleep=gaps.append, perf_counter=time.perf_counter)
    )

    def segment(i: int) -> Callable[[int], int]:
        return lambda x: calls.append(("segment", i, x)) or x + 1

    def head(i: int) -> Callable[[int], object]:
        return lambda x: calls.append(("head", i, x))

    times = profiling_module.measure_served(
        [segment(1), segment(2), segment(3)],
        {1: head(1), 2: head(2)},
        request("unused", warmup=1, repeats=2),
        first_input=0,
        probes=profiling_module.CallProbes(
            module=lambda x: calls.append(("module", 0, x)),
            served=lambda x: calls.append(("served", 0, x)),
        ),
    )
    # Each walk: every segment on the previous one's output, a head on its segment's output;
    # then the two probes, in alternating order.
    walk = [("segment", 1, 0), ("head", 1, 1), ("segment", 2, 1), ("head", 2, 2),
            ("segment", 3, 2)]  # fmt: skip
    module_first = [("module", 0, 0), ("served", 0, 0)]
    served_first = module_first[::-1]
    # warm-up, then 2 timed walks
    assert calls == walk + module_first + walk + module_first + walk + served_first
    assert gaps == [profiling_module.IDLE_GAP_S] * 2  # idle before each timed walk only
    assert len(times.segments_ms) == 3
    assert [h.cut_index for h in times.heads] == [1, 2]
    assert times.idle_gap_ms == pytest.approx(profiling_module.IDLE_GAP_S * 1000)


def test_a_served_call_costs_what_its_program_costs_over_its_module() -> None:
    def busy(ms: float) -> Callable[[int], int]:
        def run(x: int) -> int:
            until = time.perf_counter() + ms / 1000
            while time.perf_counter() < until:
                pass
            return x

        return run

    times = profiling_module.measure_served(
        [busy(0.0)],
        {},
        request("unused", warmup=0, repeats=3),
        first_input=0,
        probes=profiling_module.CallProbes(module=busy(0.0), served=busy(20.0)),
    )
    # A busy-wait only ever runs long: the served probe's median is at least 20 ms, and the
    # module probe's would need two of three calls held up by 20 ms to hide the difference.
    assert times.call_ms >= 20.0
    assert 0.0 < times.export_overhead_ms <= times.call_ms
    assert times.segments_ms[0] >= times.export_overhead_ms


def test_a_cpu_profile_times_the_segments_and_heads_as_served(tiny_ref: str) -> None:
    plain = TorchBackend().profile(request(tiny_ref, batch_sizes=(1,)))
    assert plain.served is not None
    assert len(plain.served.segments_ms) == plain.num_cuts
    assert plain.served.heads == ()
    assert plain.served.call_ms > 0
    with_heads = TorchBackend().profile(
        request(tiny_ref, batch_sizes=(1,), head=ExitHeadSpec(preset="minimal"))
    )
    assert with_heads.served is not None
    assert [h.cut_index for h in with_heads.served.heads] == list(range(1, plain.num_cuts))
    assert with_heads.request_ms(1) == list(with_heads.served.segments_ms)
