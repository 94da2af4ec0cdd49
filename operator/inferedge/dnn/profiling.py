"""How a cut model is measured and its profile assembled, whatever framework runs it.

Each segment runs on its true input: a seeded random batch passed through the segments before
it. Latency is the median and the nearest-rank 95th percentile of `repeats` timed runs after
`warmup` runs (`time.perf_counter_ns`, the device synchronised around each), both multiplied by
`emulate_slowdown`. Energy comes only from a real sensor, measured in a separate pass of at least
`ENERGY_WINDOW_S`, and is never scaled by the slowdown: scaling host energy would invent a
number. A backend supplies only what its framework decides: the segments as callables, the first
input, how to synchronise the device and, where it can, an allocator's peak memory.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import Literal, Protocol, TypeVar

from inferedge.core.errors import ModelRefError, one_line
from inferedge.core.profile import (
    CutPoint,
    DeviceInfo,
    MeasuredProfile,
    ModelInfo,
    Segment,
    SegmentMeasurement,
)
from inferedge.core.progress import ProgressCallback
from inferedge.dnn.energy import EnergySensor
from inferedge.dnn.protocols import ProfileRequest

SEED = 0
"""Seed of the random input batches, so profiles are reproducible."""

ENERGY_WINDOW_S = 0.2
"""Shortest time energy is measured over: sensors update every few milliseconds."""

Tracing = Literal["fx", "sequential", "export", "keras"]
Sync = Callable[[], None]
"""Waits until the device has finished the work queued so far (a no-op on a CPU)."""

_Value = TypeVar("_Value")


def no_sync() -> None:
    """The synchroniser of a device whose calls return when their work is done."""


def measure_chain(
    segments: Sequence[Callable[[_Value], _Value]],
    cut_points: Sequence[CutPoint],
    request: ProfileRequest,
    *,
    first_input: Callable[[int], _Value],
    peak_bytes_per_sample: Callable[[int], int],
    model_name: str,
    first_run: Callable[[int, _Value], tuple[_Value, int | None]] | None = None,
    sync: Sync = no_sync,
    sensor: EnergySensor | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[Segment, ...]:
    """Measure segments 1..K (`segments[i - 1]` runs from cut i-1 to cut i) as `request` asks.

    `first_input(batch_size)` is the input of segment 1. `first_run(i, value)` runs segment i
    once, untimed, and returns its output (the next segment's input) with the allocator's peak
    bytes over the run, or None where there is no allocator to ask; then the peak is the
    liveness estimate `peak_bytes_per_sample(i)` times the batch size. A failure in that first
    run is the model's own code failing at this batch size, a one-line `ModelRefError`.
    """

    def just_run(i: int, value: _Value) -> tuple[_Value, int | None]:
        return segments[i - 1](value), None

    run_first = first_run or just_run
    measured: dict[int, list[SegmentMeasurement]] = {i: [] for i in range(1, len(segments) + 1)}
    total = len(segments) * len(request.batch_sizes)
    for b, batch_size in enumerate(request.batch_sizes):
        value = first_input(batch_size)
        for i, segment in enumerate(segments, start=1):
            try:
                output, peak = run_first(i, value)
            except Exception as exc:  # the model's own code failing at this batch size
                raise ModelRefError(
                    f"model {model_name!r} fails in segment {i} at batch size {batch_size}: "
                    f"{one_line(exc)}"
                ) from None
            measured[i].append(
                measure(
                    functools.partial(segment, value),
                    batch_size=batch_size,
                    peak_bytes=peak if peak is not None else peak_bytes_per_sample(i) * batch_size,
                    request=request,
                    sync=sync,
                    sensor=sensor,
                )
            )
            value = output
            if progress is not None:
                progress(b * len(segments) + i, total)
    return tuple(
        Segment(
            index=i,
            flops=cut.cum_flops - prev.cum_flops,
            param_bytes=cut.cum_param_bytes - prev.cum_param_bytes,
            measurements=tuple(measured[i]),
        )
        for i, (prev, cut) in enumerate(pairwise(cut_points), start=1)
    )


def measure(
    run: Callable[[], object],
    *,
    batch_size: int,
    peak_bytes: int,
    request: ProfileRequest,
    sync: Sync = no_sync,
    sensor: EnergySensor | None = None,
) -> SegmentMeasurement:
    """Time `run` (one batch through one segment) as `request` asks, then measure its energy."""
    for _ in range(request.warmup):
        run()
    sync()
    times_ms = []
    for _ in range(request.repeats):
        start = time.perf_counter_ns()
        run()
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
        energy_mj=None if sensor is None else _energy_mj(run, request, sensor, sync),
    )


def _energy_mj(
    run: Callable[[], object], request: ProfileRequest, sensor: EnergySensor, sync: Sync
) -> float:
    """Energy of one batch: a separate pass of at least `repeats` runs and ENERGY_WINDOW_S, so
    the sampling thread does not disturb the timed runs and the sensor sees enough updates."""
    runs = 0
    sensor.start()
    start = time.perf_counter()
    try:
        while runs < request.repeats or time.perf_counter() - start < ENERGY_WINDOW_S:
            run()
            runs += 1
        sync()
    finally:
        energy = sensor.stop()
    return energy / runs


def check_logits(cut_points: Sequence[CutPoint], model_name: str, num_classes: int) -> None:
    """`ModelRefError` unless the model's output is `num_classes` logits per sample."""
    output_shape = cut_points[-1].shape
    if output_shape != (num_classes,):
        raise ModelRefError(
            f"model {model_name!r} outputs shape {output_shape} per sample, "
            f"expected ({num_classes},) for num_classes={num_classes}"
        )


class LoadedModel(Protocol):
    """What a profile records of a loaded model: its name and the reference it came from."""

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str: ...


class TracedModel(Protocol):
    """What a profile records of a cut model: how its cut points were found, and them."""

    @property
    def tracing(self) -> Tracing: ...

    @property
    def cut_points(self) -> tuple[CutPoint, ...]: ...


def measured_profile(
    request: ProfileRequest,
    device: DeviceInfo,
    model: LoadedModel,
    graph: TracedModel,
    segments: tuple[Segment, ...],
) -> MeasuredProfile:
    """The validated profile of what `request` asked for, measured on `device` (whose framework
    the model's is too), stamped with the time now."""
    return MeasuredProfile(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        device=device,
        model=ModelInfo(
            name=model.name,
            framework=device.framework,
            source=model.source,
            input_shape=request.input_shape,
            num_classes=request.num_classes,
            tracing=graph.tracing,
        ),
        batch_sizes=request.batch_sizes,
        warmup=request.warmup,
        cut_points=graph.cut_points,
        segments=segments,
    )
