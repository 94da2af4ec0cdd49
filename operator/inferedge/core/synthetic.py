"""Synthetic device profiles: seeded, measurement-free stand-ins for tests, benchmarks and figures.

They follow the shape of real CNN profiles (activations shrink with depth while parameters grow)
but are not measurements, and say so in their device and model names.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from inferedge.core.operating_space import CandidateExit
from inferedge.core.profile import (
    CutPoint,
    DeviceInfo,
    MeasuredProfile,
    ModelInfo,
    Segment,
    SegmentMeasurement,
)

GIB = 1024**3


def synthetic_profile(
    num_cuts: int,
    *,
    seed: int = 0,
    ms_per_gflop: float = 10.0,
    device_name: str = "synthetic",
    memory_bytes: int = 4 * GIB,
    batch_sizes: tuple[int, ...] = (1,),
    num_classes: int = 10,
) -> MeasuredProfile:
    """A profile with `num_cuts` segments whose latency is proportional to FLOPs.

    The same seed gives the same model (cut names, shapes, FLOPs, parameters) whatever the device
    speed, so an edge and a cloud profile made with one seed pair up for planning.
    """
    rng = random.Random(seed)
    side, channels = 64, 3
    cuts = [
        CutPoint(
            index=0,
            name="x",
            shape=(channels, side, side),
            activation_bytes=4 * channels * side * side,
            cum_flops=0,
            cum_param_bytes=0,
        )
    ]
    segments = []
    cum_flops = cum_params = 0
    for i in range(1, num_cuts + 1):
        if i < num_cuts and rng.random() < 6 / max(num_cuts, 6) and side > 1:
            side //= 2
            channels = min(channels * 2, 2048)
        flops = rng.randint(1, 50) * 1_000_000
        params = rng.randint(0, 400) * 4096
        cum_flops += flops
        cum_params += params
        shape = (num_classes,) if i == num_cuts else (max(channels, 16), side, side)
        elems = 1
        for dim in shape:
            elems *= dim
        cuts.append(
            CutPoint(
                index=i,
                name=f"node_{i}",
                shape=shape,
                activation_bytes=4 * elems,
                cum_flops=cum_flops,
                cum_param_bytes=cum_params,
            )
        )
        segments.append(
            Segment(
                index=i,
                flops=flops,
                param_bytes=params,
                measurements=tuple(
                    SegmentMeasurement(
                        batch_size=b,
                        median_ms=flops / 1e9 * ms_per_gflop * b,
                        p95_ms=flops / 1e9 * ms_per_gflop * b * 1.1,
                        samples=1,
                        peak_memory_bytes=2 * 4 * elems * b,
                    )
                    for b in batch_sizes
                ),
            )
        )
    return assemble_profile(
        cuts,
        segments,
        device_name=device_name,
        memory_bytes=memory_bytes,
        model_name=f"synthetic-{num_cuts}-{seed}",
        input_shape=(3, 64, 64),
        num_classes=num_classes,
        batch_sizes=batch_sizes,
    )


def assemble_profile(
    cuts: Sequence[CutPoint],
    segments: Sequence[Segment],
    *,
    device_name: str,
    memory_bytes: int,
    model_name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_sizes: tuple[int, ...],
) -> MeasuredProfile:
    """A profile of made-up cut points and segments on a device that says it is synthetic."""
    return MeasuredProfile(
        created_at="1970-01-01T00:00:00Z",
        device=DeviceInfo(
            name=device_name,
            cpu_model="synthetic",
            cores=1,
            memory_bytes=memory_bytes,
            framework="torch",
            framework_version="synthetic",
            platform="synthetic",
        ),
        model=ModelInfo(
            name=model_name,
            framework="torch",
            source="synthetic",
            input_shape=input_shape,
            num_classes=num_classes,
            tracing="fx",
        ),
        batch_sizes=batch_sizes,
        warmup=0,
        cut_points=tuple(cuts),
        segments=tuple(segments),
    )


def synthetic_exits(
    num_cuts: int, cuts: Sequence[int], *, samples: int, seed: int = 0
) -> tuple[list[CandidateExit], list[bool]]:
    """Made-up evaluations of exit heads at `cuts` of a `num_cuts` model, and of its final
    classifier: deeper heads are surer and more often right, as trained heads are."""
    rng = random.Random(seed)
    exits = []
    for cut in cuts:
        depth = cut / num_cuts
        head_ms = rng.uniform(0.1, 1.0)
        exits.append(
            CandidateExit(
                cut_index=cut,
                confidence=tuple(min(1.0, rng.random() * (0.5 + depth)) for _ in range(samples)),
                correct=tuple(rng.random() < 0.4 + 0.55 * depth for _ in range(samples)),
                edge_head_ms=head_ms,
                cloud_head_ms=head_ms / 10,
            )
        )
    return exits, [rng.random() < 0.95 for _ in range(samples)]
