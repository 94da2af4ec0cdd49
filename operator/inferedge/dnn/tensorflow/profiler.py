"""Measure every segment of a cut Keras model at every batch size.

The measurement is the torch backend's: each segment runs on its true input (a seeded random
batch passed through the segments before it), compiled once and run `warmup` times before
`repeats` timed runs (`time.perf_counter_ns`, the device synchronised around each when TensorFlow
uses a GPU). Latency is the median and the nearest-rank 95th percentile, both multiplied by
`emulate_slowdown`. Peak memory is the liveness analysis's estimate of the activation bytes held
at once, linear in the batch size. Energy comes only from a real sensor, measured in a separate
pass of at least `ENERGY_WINDOW_S`, and is never scaled by the slowdown.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import numpy as np
import tensorflow as tf

from inferedge.core.errors import ModelRefError, one_line
from inferedge.core.profile import Segment, SegmentMeasurement
from inferedge.dnn.backend import ProfileRequest, ProgressCallback
from inferedge.dnn.energy import EnergySensor
from inferedge.dnn.tensorflow.device import has_gpu
from inferedge.dnn.tensorflow.graph import CutGraph
from inferedge.dnn.tensorflow.layout import to_internal
from inferedge.dnn.tensorflow.run import TensorFn, compiled

SEED = 0
ENERGY_WINDOW_S = 0.2
"""Shortest time energy is measured over: sensors update every few milliseconds."""


def random_input(input_shape: tuple[int, ...], batch_size: int) -> np.ndarray:
    """The same random batch (channels-last) on every call, so profiles are reproducible."""
    rng = np.random.default_rng(SEED)
    return rng.standard_normal((batch_size, *to_internal(input_shape))).astype(np.float32)


def measure_segments(
    graph: CutGraph,
    request: ProfileRequest,
    *,
    model_name: str,
    sensor: EnergySensor | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[Segment, ...]:
    """Measure segments 1..K of `graph` as `request` asks."""
    parts = [
        compiled(graph.segment(i), graph.internal_shape(i - 1))
        for i in range(1, graph.num_cuts + 1)
    ]
    sync = _synchronizer()
    measured: dict[int, list[SegmentMeasurement]] = {i: [] for i in range(1, len(parts) + 1)}
    total = len(parts) * len(request.batch_sizes)
    for b, batch_size in enumerate(request.batch_sizes):
        value: Any = tf.constant(random_input(request.input_shape, batch_size))
        for i, part in enumerate(parts, start=1):
            try:
                output = part(value)  # also traces the function, outside the timed runs
            except Exception as exc:  # the model's own code failing at this batch size
                raise ModelRefError(
                    f"model {model_name!r} fails in segment {i} at batch size {batch_size}: "
                    f"{one_line(exc)}"
                ) from None
            peak_bytes = graph.segment_peak_bytes(i) * batch_size
            measured[i].append(
                _measure(
                    part, value, batch_size, peak_bytes, request=request, sensor=sensor, sync=sync
                )
            )
            value = output
            if progress is not None:
                progress(b * len(parts) + i, total)
    return tuple(
        Segment(
            index=i,
            flops=cut.cum_flops - prev.cum_flops,
            param_bytes=cut.cum_param_bytes - prev.cum_param_bytes,
            measurements=tuple(measured[i]),
        )
        for i, (prev, cut) in enumerate(pairwise(graph.cut_points), start=1)
    )


def _measure(
    part: TensorFn,
    value: Any,
    batch_size: int,
    peak_bytes: int,
    *,
    request: ProfileRequest,
    sensor: EnergySensor | None,
    sync: Callable[[], None],
) -> SegmentMeasurement:
    for _ in range(request.warmup):
        part(value)
    sync()
    times_ms = []
    for _ in range(request.repeats):
        start = time.perf_counter_ns()
        part(value)
        sync()
        times_ms.append((time.perf_counter_ns() - start) / 1e6)
    times_ms.sort()
    # Nearest-rank percentile: an observed time, never an interpolation between two.
    p95 = times_ms[math.ceil(0.95 * len(times_ms)) - 1]
    return SegmentMeasurement(
        batch_size=batch_size,
        median_ms=statistics.median(times_ms) * request.emulate_slowdown,
        p95_ms=p95 * request.emulate_slowdown,
        samples=request.repeats,
        peak_memory_bytes=peak_bytes,
        energy_mj=None if sensor is None else _energy_mj(part, value, request, sensor, sync),
    )


def _energy_mj(
    part: TensorFn,
    value: Any,
    request: ProfileRequest,
    sensor: EnergySensor,
    sync: Callable[[], None],
) -> float:
    """Energy of one batch: a separate pass of at least `repeats` runs and ENERGY_WINDOW_S, so
    the sampling thread does not disturb the timed runs and the sensor sees enough updates."""
    runs = 0
    sensor.start()
    start = time.perf_counter()
    try:
        while runs < request.repeats or time.perf_counter() - start < ENERGY_WINDOW_S:
            part(value)
            runs += 1
        sync()
    finally:
        energy = sensor.stop()
    return energy / runs


def _synchronizer() -> Callable[[], None]:
    # On a CPU a tf.function returns when its work is done; a GPU queues kernels.
    if has_gpu():
        return tf.experimental.sync_devices  # type: ignore[no-any-return]
    return lambda: None
