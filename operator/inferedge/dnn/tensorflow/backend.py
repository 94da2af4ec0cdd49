"""The Keras implementation of `inferedge.dnn.protocols.Backend`."""

from __future__ import annotations

from inferedge.core.profile import CutPoint, MeasuredProfile
from inferedge.core.progress import ProgressCallback
from inferedge.dnn.energy import detect_energy_sensor
from inferedge.dnn.profiling import check_logits, measured_profile
from inferedge.dnn.protocols import ProfileRequest
from inferedge.dnn.tensorflow.device import describe_device
from inferedge.dnn.tensorflow.graph import CutGraph, build_cut_graph
from inferedge.dnn.tensorflow.loader import LoadedModel, load_model
from inferedge.dnn.tensorflow.profiler import measure_segments


class KerasBackend:
    """Cuts and profiles Keras models where TensorFlow places them (a GPU if it sees one)."""

    def cut_points(
        self, model_ref: str, num_classes: int, input_shape: tuple[int, ...]
    ) -> tuple[CutPoint, ...]:
        """The model's cut points, from the input (index 0) to the output (index K)."""
        _, graph = prepare(model_ref, num_classes, input_shape)
        return graph.cut_points

    def profile(
        self, request: ProfileRequest, progress: ProgressCallback | None = None
    ) -> MeasuredProfile:
        """Measure every segment at every batch size and return a validated profile."""
        loaded, graph = prepare(request.model_ref, request.num_classes, request.input_shape)
        sensor = detect_energy_sensor()
        segments = measure_segments(
            graph, request, model_name=loaded.name, sensor=sensor, progress=progress
        )
        described = describe_device(
            request.device_name,
            energy_sensor=sensor.name if sensor is not None else None,
            emulated_slowdown=request.emulate_slowdown,
            memory_bytes=request.memory_bytes,
        )
        return measured_profile(request, described, loaded, graph, segments)


def prepare(
    model_ref: str, num_classes: int, input_shape: tuple[int, ...], seed: int = 0
) -> tuple[LoadedModel, CutGraph]:
    """Load the model and find its cut points.

    Raises `ModelRefError` when the model's output is not `num_classes` logits per sample.
    """
    loaded = load_model(model_ref, num_classes, input_shape, seed=seed)
    graph = build_cut_graph(loaded.model, input_shape, name=loaded.name)
    check_logits(graph.cut_points, loaded.name, num_classes)
    return loaded, graph
