"""The torch implementation of `inferedge.dnn.protocols.Backend`."""

from __future__ import annotations

import torch

from inferedge.core.profile import CutPoint, MeasuredProfile, ServedTimes
from inferedge.core.progress import ProgressCallback
from inferedge.dnn.energy import detect_energy_sensor
from inferedge.dnn.profiling import check_logits, measured_profile
from inferedge.dnn.protocols import ProfileRequest
from inferedge.dnn.torch.device import describe_device
from inferedge.dnn.torch.graph import CutGraph, build_cut_graph
from inferedge.dnn.torch.loader import LoadedModel, load_model
from inferedge.dnn.torch.profiler import measure_segments, measure_served_pass, random_input


class TorchBackend:
    """Cuts and profiles torch models, on the GPU when CUDA is available, else on the CPU."""

    def cut_points(
        self, model_ref: str, num_classes: int, input_shape: tuple[int, ...]
    ) -> tuple[CutPoint, ...]:
        """The model's cut points, from the input (index 0) to the output (index K)."""
        _, graph = _prepare(model_ref, num_classes, input_shape, torch.device("cpu"))
        return graph.cut_points

    def profile(
        self, request: ProfileRequest, progress: ProgressCallback | None = None
    ) -> MeasuredProfile:
        """Measure every segment at every batch size and return a validated profile."""
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        loaded, graph = _prepare(
            request.model_ref, request.num_classes, request.input_shape, device
        )
        sensor = detect_energy_sensor()
        segments = measure_segments(
            graph, request, device, model_name=loaded.name, sensor=sensor, progress=progress
        )
        served = _served_times(graph, request, device)
        described = describe_device(
            request.device_name,
            device,
            energy_sensor=sensor.name if sensor is not None else None,
            emulated_slowdown=request.emulate_slowdown,
            memory_bytes=request.memory_bytes,
        )
        described = described.model_copy(update={"threads": torch.get_num_threads()})
        return measured_profile(request, described, loaded, graph, segments, served=served)


def _prepare(
    model_ref: str, num_classes: int, input_shape: tuple[int, ...], device: torch.device
) -> tuple[LoadedModel, CutGraph]:
    """Load the model onto `device` and find its cut points.

    Raises `ModelRefError` when the model's output is not `num_classes` scores per sample.
    """
    loaded = load_model(model_ref, num_classes, input_shape)
    loaded.module.to(device)
    graph = build_cut_graph(
        loaded.module,
        random_input(input_shape, 1, device),
        name=loaded.name,
        exported=loaded.kind == "export",
    )
    check_logits(graph.cut_points, loaded.name, num_classes)
    return loaded, graph


def _served_times(
    graph: CutGraph, request: ProfileRequest, device: torch.device
) -> ServedTimes | None:
    """The served pass, where servers run their programs: on a CPU (on a GPU the pass would
    time the CPU)."""
    return measure_served_pass(graph, request) if device.type == "cpu" else None
