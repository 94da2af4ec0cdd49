"""Hand-made device profiles with exactly the numbers a test needs, and store lookups."""

from __future__ import annotations

from collections.abc import Sequence

from inferedge.core.profile import CutPoint, MeasuredProfile, Segment, SegmentMeasurement
from inferedge.core.synthetic import assemble_profile
from inferedge.storage import MANIFEST_NAME, ArtifactStore


def profile(
    ms: Sequence[float],
    *,
    acts: Sequence[int] | None = None,
    params: Sequence[int] | None = None,
    peaks: Sequence[int] | None = None,
    flops: Sequence[int] | None = None,
    name: str = "dev",
    memory: int = 10**12,
    energy: Sequence[float] | None = None,
) -> MeasuredProfile:
    """A hand-made profile: `ms[i]` is segment i+1's latency; acts has one entry per cut."""
    k = len(ms)
    acts = acts or [1000] * (k + 1)
    params = params or [100] * k
    peaks = peaks or [10] * k
    flops = flops or [1000] * k
    cuts, cf, cp = [], 0, 0
    for i in range(k + 1):
        if i:
            cf, cp = cf + flops[i - 1], cp + params[i - 1]
        cuts.append(
            CutPoint(
                index=i,
                name=f"c{i}",
                shape=(max(acts[i] // 4, 1),),
                activation_bytes=acts[i],
                cum_flops=cf,
                cum_param_bytes=cp,
            )
        )
    segs = [
        Segment(
            index=i + 1,
            flops=flops[i],
            param_bytes=params[i],
            measurements=(
                SegmentMeasurement(
                    batch_size=1,
                    median_ms=ms[i],
                    p95_ms=ms[i],
                    samples=1,
                    peak_memory_bytes=peaks[i],
                    energy_mj=None if energy is None else energy[i],
                ),
            ),
        )
        for i in range(k)
    ]
    return assemble_profile(
        cuts,
        segs,
        device_name=name,
        memory_bytes=memory,
        model_name="m",
        input_shape=(1,),
        num_classes=10,
        batch_sizes=(1,),
    )


def committed_set(store: ArtifactStore, pipeline_prefix: str, plan_hash: str) -> str:
    """The prefix of the one artifact set committed for `plan_hash` under `pipeline_prefix`
    (`<namespace>/<pipeline>`): its set id is named by what was trained, so tests look it up."""
    keys = store.list(f"{pipeline_prefix}/{plan_hash}/")
    (manifest,) = [k for k in keys if k.endswith(f"/{MANIFEST_NAME}")]
    return manifest.removesuffix(f"/{MANIFEST_NAME}")
