"""How a cut model is measured and its profile assembled, whatever framework runs it.

Each segment runs on its true input: a seeded random batch passed through the segments before
it. Latency is the median and the nearest-rank 95th percentile of `repeats` timed runs after
`warmup` runs (`time.perf_counter_ns`, the device synchronised around each), both multiplied by
`emulate_slowdown`. A served pass (`measure_served`) then times the model as a server runs it.
Energy comes only from a real sensor, measured in a separate pass of at least
`ENERGY_WINDOW_S`, and is never scaled by the slowdown: scaling host energy would invent a
number. A backend supplies only what its framework decides: the segments as callables, the first
input, how to synchronise the device and, where it can, an allocator's peak memory.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Generic, Literal, Protocol, TypeVar

from inferedge.core.errors import ModelRefError, one_line
from inferedge.core.profile import (
    CutPoint,
    DeviceInfo,
    HeadTiming,
    MeasuredProfile,
    ModelInfo,
    Segment,
    SegmentMeasurement,
    ServedTimes,
)
from inferedge.core.progress import ProgressCallback
from inferedge.dnn.energy import EnergySensor
from inferedge.dnn.protocols import ProfileRequest
from inferedge.dnn.slowdown import slowed_call

SEED = 0
"""Seed of the random input batches, so profiles are reproducible."""

ENERGY_WINDOW_S = 0.2
"""Shortest time energy is measured over: sensors update every few milliseconds."""

IDLE_GAP_S = 0.01
"""Idle time before each walk of the served pass: a request that finds the device idle pays
for waking it (caches, clocks, a sleeping thread pool), which warm back-to-back runs hide.
On our 2-core CI machines a single-row call after 10 ms idle costs 2-4x its warm time."""

Tracing = Literal["fx", "sequential", "export", "keras"]
Sync = Callable[[], None]
"""Waits until the device has finished the work queued so far (a no-op on a CPU)."""

_Value = TypeVar("_Value")


@dataclass(frozen=True)
class CallProbes(Generic[_Value]):
    """Two calls that do next to no work: a plain module, and the same module as the program a
    server loads behind the server's wrapper. Their difference is a served call's extra cost."""

    module: Callable[[_Value], object]
    served: Callable[[_Value], object]


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


def measure_served(
    segments: Sequence[Callable[[_Value], _Value]],
    heads: Mapping[int, Callable[[_Value], object]],
    request: ProfileRequest,
    *,
    first_input: _Value,
    probes: CallProbes[_Value],
    progress: ProgressCallback | None = None,
) -> ServedTimes:
    """Time single-row requests as a server serves them: `segments` and `heads` (by cut index)
    are the model's callables behind the server's wrapper.

    Each of `repeats` walks waits `IDLE_GAP_S`, then calls every segment in turn and the head at
    each cut in `heads` on that segment's output, each on the emulated device
    (`dnn.slowdown`, as the server does). The two `probes` are timed warm, back to back: what
    one call of a served program costs over one of the module it was made from is added to
    every time, so the walk can run the modules without exporting each of them.
    """
    slowdown = request.emulate_slowdown
    seg_times: list[list[float]] = [[] for _ in segments]
    head_times: dict[int, list[float]] = {cut: [] for cut in heads}

    def walk(record: bool) -> None:
        value = first_input
        for i, segment in enumerate(segments, start=1):
            value, seconds = slowed_call(segment, value, slowdown)
            if record:
                seg_times[i - 1].append(seconds * 1000.0)
            if i in heads:
                _, seconds = slowed_call(heads[i], value, slowdown)
                if record:
                    head_times[i].append(seconds * 1000.0)

    module_ms: list[float] = []
    served_ms: list[float] = []

    def probe(record: bool, served_first: bool) -> None:
        # Right after a walk, in the state its later calls ran in; the order alternates so
        # neither probe always finds the caches the other left.
        pairs = ((probes.module, module_ms), (probes.served, served_ms))
        for fn, times in reversed(pairs) if served_first else pairs:
            _, seconds = slowed_call(fn, first_input, slowdown)
            if record:
                times.append(seconds * 1000.0)

    for w in range(request.warmup):
        walk(record=False)
        probe(record=False, served_first=w % 2 == 1)
    for r in range(request.repeats):
        time.sleep(IDLE_GAP_S)
        walk(record=True)
        probe(record=True, served_first=r % 2 == 1)
        if progress is not None:
            progress(r + 1, request.repeats)
    call_ms = statistics.median(served_ms)
    extra = max(0.0, call_ms - statistics.median(module_ms))
    return ServedTimes(
        idle_gap_ms=IDLE_GAP_S * 1000.0,
        call_ms=call_ms,
        export_overhead_ms=extra,
        segments_ms=tuple(statistics.median(t) + extra for t in seg_times),
        heads=tuple(
            HeadTiming(cut_index=cut, ms=statistics.median(t) + extra)
            for cut, t in head_times.items()
        ),
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
    *,
    served: ServedTimes | None = None,
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
        served=served,
    )
