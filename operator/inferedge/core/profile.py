"""Device profiles: what one model costs, segment by segment, on one device class.

A profile is measured by `inferedge profile` (in `inferedge.dnn`) and consumed by the planner.
Cut point 0 is the model input and the last cut point is the model output, so a split at cut k
means "the edge runs segments 1..k, the cloud runs segments k+1..K"; k = 0 is cloud-only and
k = K is edge-only. Segment i runs from cut i-1 to cut i.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inferedge.core.errors import ProfileError
from inferedge.core.versioned import parse_versioned

PROFILE_SCHEMA_VERSION: Final = "inferedge.io/profile/v1"

NonNegInt = Annotated[int, Field(ge=0)]
PosInt = Annotated[int, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CutPoint(_Frozen):
    """A place in the model's graph after which exactly one tensor is live."""

    index: NonNegInt = Field(description="Position in the cut-point list; 0 is the model input.")
    name: str = Field(description="Graph node (or child module) that produces the tensor.")
    shape: tuple[PosInt, ...] = Field(description="Per-sample tensor shape, batch dim left out.")
    dtype: str = Field(default="float32", description="Element type of the tensor.")
    activation_bytes: NonNegInt = Field(description="Bytes of one sample's tensor here.")
    cum_flops: NonNegInt = Field(description="FLOPs for one sample from the input to here.")
    cum_param_bytes: NonNegInt = Field(description="Parameter bytes from the input to here.")


class SegmentMeasurement(_Frozen):
    """One segment measured at one batch size."""

    batch_size: PosInt
    median_ms: NonNegFloat = Field(description="Median latency of one batch, milliseconds.")
    p95_ms: NonNegFloat = Field(description="95th-percentile latency of one batch, milliseconds.")
    samples: PosInt = Field(description="Timed runs behind the statistics (after warm-up).")
    peak_memory_bytes: NonNegInt = Field(
        description="Peak activation memory of the segment at this batch size."
    )
    energy_mj: NonNegFloat | None = Field(
        default=None,
        description="Energy of one batch in millijoules; null where no real sensor exists.",
    )

    @model_validator(mode="after")
    def _p95_not_below_median(self) -> SegmentMeasurement:
        if self.p95_ms + 1e-9 < self.median_ms:
            raise ValueError(f"p95_ms {self.p95_ms} is below median_ms {self.median_ms}")
        return self


class Segment(_Frozen):
    """The layers between cut `index - 1` and cut `index`."""

    index: PosInt
    flops: NonNegInt = Field(description="FLOPs for one sample.")
    param_bytes: NonNegInt
    measurements: tuple[SegmentMeasurement, ...] = Field(min_length=1)

    def at(self, batch_size: int) -> SegmentMeasurement:
        """The measurement at `batch_size`; `ProfileError` if it was not profiled."""
        for m in self.measurements:
            if m.batch_size == batch_size:
                return m
        have = ", ".join(str(m.batch_size) for m in self.measurements)
        raise ProfileError(f"batch size {batch_size} was not profiled (profiled: {have})")


class DeviceInfo(_Frozen):
    """What the profile was measured on."""

    name: str = Field(description="Device class name, e.g. the DeviceProfile's name.")
    cpu_model: str
    cores: PosInt
    accelerator: str | None = Field(default=None, description="GPU / Jetson model, if any.")
    memory_bytes: PosInt = Field(description="Memory available to the model on this device.")
    framework: Literal["torch", "tensorflow"]
    framework_version: str
    platform: str = Field(description="OS and machine, e.g. 'Linux-6.1-x86_64'.")
    energy_sensor: str | None = Field(default=None, description="Sensor behind energy_mj.")
    threads: PosInt | None = Field(
        default=None,
        description="Compute threads the framework ran the model on (its servers should match).",
    )
    emulated_slowdown: float = Field(
        default=1.0,
        ge=1.0,
        description="Latencies were multiplied by this factor to emulate a slower device.",
    )


class ModelInfo(_Frozen):
    """The model that was profiled."""

    name: str
    framework: Literal["torch", "tensorflow"]
    source: str = Field(description="The model reference: zoo name, module:callable or path.")
    input_shape: tuple[PosInt, ...] = Field(description="Per-sample input shape, e.g. [3, 32, 32].")
    num_classes: PosInt
    tracing: Literal["fx", "sequential", "export", "keras"] = Field(
        description="How cut points were found."
    )


class HeadTiming(_Frozen):
    """One exit head of the pipeline's head spec, timed as served at one cut point."""

    cut_index: PosInt
    ms: NonNegFloat = Field(description="Median time of one single-row call, milliseconds.")


class ServedTimes(_Frozen):
    """The model timed the way a server runs it, for single-row requests.

    Each timed walk starts after `idle_gap_ms` of idleness, as a request does, and calls every
    segment (and, when a head spec was given, the head at every inner cut) as its own call
    through the server's array wrapper, emulated slowdown included. Every time then has
    `export_overhead_ms` added, what a call of an exported program costs over a call of the
    module it was exported from. So every time holds the fixed cost of one served call and the
    first segment's holds the first call after idle.
    """

    idle_gap_ms: NonNegFloat = Field(description="Idle time before each timed walk.")
    call_ms: NonNegFloat = Field(
        description="Fixed cost of one call of an exported program (warm), milliseconds."
    )
    export_overhead_ms: NonNegFloat = Field(
        default=0.0,
        description="What one call of an exported program costs over one of its module (warm); "
        "included in every time below.",
    )
    segments_ms: tuple[NonNegFloat, ...] = Field(
        min_length=1, description="Median time of segments 1..K, single row, as served."
    )
    heads: tuple[HeadTiming, ...] = Field(default=(), description="Exit heads timed as served.")

    def head_ms(self, cut_index: int) -> float | None:
        """The served time of the head at `cut_index`, or None where none was timed."""
        return next((h.ms for h in self.heads if h.cut_index == cut_index), None)


class MeasuredProfile(_Frozen):
    """A versioned profile of one model on one device class."""

    schema_version: Literal["inferedge.io/profile/v1"] = PROFILE_SCHEMA_VERSION
    created_at: str = Field(description="ISO-8601 time of measurement.")
    device: DeviceInfo
    model: ModelInfo
    batch_sizes: tuple[PosInt, ...] = Field(min_length=1)
    warmup: NonNegInt
    cut_points: tuple[CutPoint, ...] = Field(min_length=2)
    segments: tuple[Segment, ...] = Field(min_length=1)
    served: ServedTimes | None = Field(
        default=None,
        description="Single-row times as served; null where the backend cannot measure them.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> MeasuredProfile:
        if len(self.segments) != len(self.cut_points) - 1:
            raise ValueError(
                f"{len(self.cut_points)} cut points need {len(self.cut_points) - 1} segments, "
                f"got {len(self.segments)}"
            )
        for i, cut in enumerate(self.cut_points):
            if cut.index != i:
                raise ValueError(f"cut_points.{i}.index is {cut.index}, expected {i}")
        for i, seg in enumerate(self.segments, start=1):
            if seg.index != i:
                raise ValueError(f"segments.{i - 1}.index is {seg.index}, expected {i}")
            got = sorted(m.batch_size for m in seg.measurements)
            if got != sorted(self.batch_sizes):
                raise ValueError(
                    f"segments.{i - 1} has batch sizes {got}, expected {sorted(self.batch_sizes)}"
                )
        first = self.cut_points[0]
        if first.cum_flops != 0 or first.cum_param_bytes != 0:
            raise ValueError("cut_points.0 is the model input and must have zero cumulative cost")
        for prev, cut in zip(self.cut_points, self.cut_points[1:], strict=False):
            if cut.cum_flops < prev.cum_flops or cut.cum_param_bytes < prev.cum_param_bytes:
                raise ValueError(f"cut_points.{cut.index}: cumulative costs must not decrease")
        if self.served is not None:
            if len(self.served.segments_ms) != len(self.segments):
                raise ValueError(
                    f"served.segments_ms has {len(self.served.segments_ms)} times, "
                    f"expected {len(self.segments)}"
                )
            outside = [h.cut_index for h in self.served.heads if h.cut_index >= self.num_cuts]
            if outside:
                raise ValueError(f"served.heads at cuts {outside}: heads sit at inner cuts only")
        return self

    @property
    def num_cuts(self) -> int:
        """K: the index of the last cut point (the model output)."""
        return len(self.cut_points) - 1

    def request_ms(self, batch_size: int) -> list[float]:
        """What each segment 1..K costs a request of `batch_size` rows: the served times for
        single rows where they were measured (a request meets the fixed costs and the first
        call after idle that warm back-to-back runs hide), the warm medians otherwise."""
        if batch_size == 1 and self.served is not None:
            return list(self.served.segments_ms)
        return [seg.at(batch_size).median_ms for seg in self.segments]

    def head_ms(self, cut_index: int, batch_size: int) -> float | None:
        """The exit head at `cut_index` timed as served for a request of `batch_size` rows, or
        None where it was not (then callers estimate it from its FLOPs)."""
        if batch_size != 1 or self.served is None:
            return None
        return self.served.head_ms(cut_index)


def parse_profile(text: str, source: str) -> MeasuredProfile:
    """Parse and validate a profile's JSON text; errors name `source` and the field, on one line."""
    return parse_versioned(
        text,
        source,
        MeasuredProfile,
        version=PROFILE_SCHEMA_VERSION,
        error=ProfileError,
        hint="re-run `inferedge profile` with this version",
    )


def dump_profile(profile: MeasuredProfile) -> str:
    """Serialise a profile to indented JSON (the on-disk form)."""
    return profile.model_dump_json(indent=2) + "\n"
