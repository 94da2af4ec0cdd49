"""Measure every segment of a cut torch model at every batch size.

Each segment runs on its true input: a seeded random batch passed through the segments before
it. Latency is wall-clock time of `repeats` runs after `warmup` runs (the GPU synchronised
around each), and peak memory is the CUDA allocator's peak on a GPU or, on a CPU, the liveness
analysis's estimate of the bytes held at once. Energy comes only from a real sensor and is what
the whole sensed device (board or CPU package) drew, idle power included; `emulate_slowdown`
scales latencies only, since scaling host energy would invent a number.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from itertools import pairwise

import torch
from torch import fx

from inferedge.core.errors import ModelRefError, one_line
from inferedge.core.profile import Segment, SegmentMeasurement
from inferedge.dnn.backend import ProfileRequest, ProgressCallback
from inferedge.dnn.energy import EnergySensor
from inferedge.dnn.torch.graph import CutGraph

SEED = 0
ENERGY_WINDOW_S = 0.2
"""Shortest time energy is measured over: sensors update every few milliseconds."""


def random_input(
    input_shape: tuple[int, ...], batch_size: int, device: torch.device
) -> torch.Tensor:
    """The same random batch on every call, so profiles are reproducible."""
    generator = torch.Generator().manual_seed(SEED)
    return torch.randn((batch_size, *input_shape), generator=generator).to(device)


def measure_segments(
    graph: CutGraph,
    request: ProfileRequest,
    device: torch.device,
    *,
    model_name: str,
    sensor: EnergySensor | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[Segment, ...]:
    """Measure segments 1..K of `graph` (already on `device`) as `request` asks."""
    parts = [graph.segment(i) for i in range(1, graph.num_cuts + 1)]
    measured: dict[int, list[SegmentMeasurement]] = {i: [] for i in range(1, len(parts) + 1)}
    total = len(parts) * len(request.batch_sizes)
    with torch.inference_mode():
        for b, batch_size in enumerate(request.batch_sizes):
            value = random_input(request.input_shape, batch_size, device)
            for i, part in enumerate(parts, start=1):
                try:
                    output, cuda_peak = _first_run(part, value, device)
                except Exception as exc:  # the model's own code failing at this batch size
                    raise ModelRefError(
                        f"model {model_name!r} fails in segment {i} at batch size {batch_size}: "
                        f"{one_line(exc)}"
                    ) from None
                peak_bytes = (
                    cuda_peak if cuda_peak is not None else graph.segment_peak_bytes(i) * batch_size
                )
                measured[i].append(
                    _measure(part, value, batch_size, peak_bytes, request=request, sensor=sensor)
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


def _first_run(
    part: fx.GraphModule, value: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, int | None]:
    """Run `part` once on a copy of its input: the output feeds the next segment, and a segment
    that writes into its input in place then cannot change what later runs see. Returns the
    output and, on CUDA, the allocator's peak over the run (input copy included)."""
    if device.type != "cuda":
        return part(value.clone()), None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    output = part(value.clone())
    torch.cuda.synchronize(device)
    return output, torch.cuda.max_memory_allocated(device) - base


def _measure(
    part: fx.GraphModule,
    value: torch.Tensor,
    batch_size: int,
    peak_bytes: int,
    *,
    request: ProfileRequest,
    sensor: EnergySensor | None,
) -> SegmentMeasurement:
    sync = _synchronizer(value.device)
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
    part: fx.GraphModule,
    value: torch.Tensor,
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


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None
