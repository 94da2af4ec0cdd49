"""Energy tuning in a DeviceProfile: what the edge tunes online (`spec.tuning`) and, for
`inferedge run`, the emulated knobs of a device without real clocks (`spec.emulation.knobs`);
and the report an edge serves at `GET /tuning` (snake_case, like the other HTTP bodies)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inferedge.api.base import CelRule, Spec, cel
from inferedge.core.emulated_device import ClockTable, EmulatedDevice, xavier_nx

Optimiser = Literal["ecogd", "grid", "linear", "max", "dvfs", "bayes", "bandit"]


class KhzRange(Spec):
    """Bounds on one clock, in kHz; either end may be left open."""

    min_khz: int | None = Field(default=None, ge=1, le=100_000_000, description="Lowest, kHz.")
    max_khz: int | None = Field(default=None, ge=1, le=100_000_000, description="Highest, kHz.")


class TuningSpec(Spec):
    """Online tuning of the edge's batch size and CPU/GPU clocks for energy and latency
    (EcoEdgeInfer's cost ½(E/E0 + L/L0), E0 and L0 measured at the maximum settings first)."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                rule="(has(self.minBatch) ? self.minBatch : 1)"
                " <= (has(self.maxBatch) ? self.maxBatch : 16)",
                message="minBatch must not exceed maxBatch",
                mirrors="TuningSpec._batches",
                field_path=".minBatch",
            )
        )
    )

    optimiser: Optimiser = Field(
        default="ecogd",
        description="ecogd (EcoEdgeInfer's hill climber, with a batch scan), grid, linear, max, "
        "dvfs (the node's governors, largest batch), bayes (Gaussian-process Bayesian "
        "optimisation) or bandit (epsilon-greedy).",
    )
    window_requests: int = Field(
        default=316, ge=2, le=100_000, description="Requests measured per setting."
    )
    warmup_requests: int = Field(
        default=100,
        ge=0,
        le=100_000,
        description="Requests discarded after each change of setting, before the window.",
    )
    min_batch: int = Field(default=1, ge=1, le=4096, description="Smallest batch size tried.")
    max_batch: int = Field(default=16, ge=1, le=4096, description="Largest batch size tried.")
    max_wait_ms: float = Field(
        default=0.0,
        ge=0.0,
        le=10_000.0,
        description="How long a batch short of its size may wait for more requests; 0 runs "
        "what is queued as soon as the edge is free.",
    )
    clocks: bool = Field(
        default=True,
        description="Tune the CPU and GPU clocks too, through the node's clock agent (the "
        "chart's clockAgent); false tunes the batch size only.",
    )
    skip_slowest: float = Field(
        default=0.16,
        ge=0.0,
        lt=1.0,
        description="Share of each clock table's lowest steps never tried (EcoEdgeInfer "
        "skipped 4 of 25).",
    )
    cpu: KhzRange = Field(default_factory=KhzRange, description="Bounds on the CPU clock.")
    gpu: KhzRange = Field(default_factory=KhzRange, description="Bounds on the GPU clock.")
    arrival_change: float = Field(
        default=0.1,
        gt=0.0,
        le=10.0,
        description="ecogd: a window whose arrival rate differs from the rate at its last "
        "reset by more than this share clears its history and searches again (EcoEdgeInfer: "
        "0.1; raise it where the traffic is noisy and windows are short).",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the optimiser's draws.")

    @model_validator(mode="after")
    def _batches(self) -> TuningSpec:
        if self.min_batch > self.max_batch:
            raise ValueError("minBatch must not exceed maxBatch")
        return self


class ClockRange(Spec):
    """A clock table of evenly spaced steps."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                rule="self.lowMhz < self.highMhz",
                message="lowMhz must lie below highMhz",
                mirrors="ClockRange._ordered",
                field_path=".lowMhz",
            )
        )
    )

    low_mhz: float = Field(gt=0, le=100_000, description="Lowest step, MHz.")
    high_mhz: float = Field(gt=0, le=100_000, description="Highest step, MHz.")
    steps: int = Field(ge=2, le=256, description="Number of steps.")

    @model_validator(mode="after")
    def _ordered(self) -> ClockRange:
        if self.low_mhz >= self.high_mhz:
            raise ValueError("lowMhz must lie below highMhz")
        return self

    def table(self) -> ClockTable:
        """The steps."""
        return ClockTable.even(self.low_mhz, self.high_mhz, self.steps)


class KnobEmulationSpec(Spec):
    """An emulated device's clocks, service time and power (`inferedge run` only): a preset,
    with any of its figures replaced. Service time of a batch of b at clocks f (top F):
    overhead·F_c/f_c + b·(cpuPerSample·F_c/f_c + gpuPerSample·F_g/f_g); power: static plus
    each clock's dynamic maximum scaled by f·V(f)², plus the memory clock's."""

    preset: Literal["xavier-nx"] = Field(
        default="xavier-nx",
        description="Jetson Xavier NX serving a ResNet-50-like model: 25 CPU steps 115-1907 "
        "MHz, 15 GPU steps 115-1109 MHz.",
    )
    cpu_mhz: ClockRange | None = Field(default=None, description="The CPU's clock table.")
    gpu_mhz: ClockRange | None = Field(default=None, description="The GPU's clock table.")
    overhead_ms: float | None = Field(
        default=None, gt=0, le=10_000, description="Per-batch CPU-bound time at the top clocks."
    )
    cpu_per_sample_ms: float | None = Field(
        default=None, gt=0, le=10_000, description="Per-sample CPU-bound time at the top clocks."
    )
    gpu_per_sample_ms: float | None = Field(
        default=None, gt=0, le=10_000, description="Per-sample GPU-bound time at the top clocks."
    )
    static_w: float | None = Field(default=None, gt=0, le=1000, description="Static power, W.")
    cpu_dynamic_max_w: float | None = Field(
        default=None, ge=0, le=1000, description="CPU dynamic power at its top clock, W."
    )
    gpu_dynamic_max_w: float | None = Field(
        default=None, ge=0, le=1000, description="GPU dynamic power at its top clock, W."
    )

    def device(self) -> EmulatedDevice:
        """The emulated device: the preset with this spec's figures in place of its own."""
        base = xavier_nx()
        ms = 1000.0
        return EmulatedDevice(
            name=f"{base.name}" if self._is_preset() else f"custom {base.name}",
            cpu=self.cpu_mhz.table() if self.cpu_mhz else base.cpu,
            gpu=self.gpu_mhz.table() if self.gpu_mhz else base.gpu,
            max_batch=4096,
            overhead_s=self.overhead_ms / ms if self.overhead_ms else base.overhead_s,
            cpu_per_sample_s=(
                self.cpu_per_sample_ms / ms if self.cpu_per_sample_ms else base.cpu_per_sample_s
            ),
            gpu_per_sample_s=(
                self.gpu_per_sample_ms / ms if self.gpu_per_sample_ms else base.gpu_per_sample_s
            ),
            static_w=self.static_w or base.static_w,
            cpu_dynamic_max_w=_or(self.cpu_dynamic_max_w, base.cpu_dynamic_max_w),
            gpu_dynamic_max_w=_or(self.gpu_dynamic_max_w, base.gpu_dynamic_max_w),
            memory_max_w=base.memory_max_w,
            memory_idle=base.memory_idle,
            memory_full=base.memory_full,
            v_low=base.v_low,
            v_knee=base.v_knee,
            idle_activity=base.idle_activity,
        )

    def _is_preset(self) -> bool:
        return self.model_fields_set <= {"preset"}


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


class WindowReport(BaseModel):
    """One window as `/tuning` reports it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    finished_s: float = Field(description="Seconds since the tuner started.")
    cpu_khz: float
    gpu_khz: float
    batch: int
    served_batch: float = Field(description="Mean samples per batch actually run.")
    arrival_rate_hz: float
    latency_ms: float
    energy_j_per_request: float
    cost: float
    converged: bool


class TuningReport(BaseModel):
    """What `GET /tuning` answers: the tuner's configuration, reference and every window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    optimiser: str
    emulated: bool = Field(description="Whether energy and clocks are an emulated device's.")
    clocks: bool = Field(description="Whether the clocks are tuned (else the batch only).")
    started_unix: float = Field(description="When the tuner started (Unix time, seconds).")
    reference: dict[str, float] | None = Field(description="E0 and L0, once measured.")
    setting: dict[str, float] = Field(description="What is served now.")
    window_count: int = Field(ge=0, description="Windows measured since the tuner started.")
    windows: list[WindowReport] = Field(
        description="The latest windows, oldest first (all the edge keeps, or `?windows=N`)."
    )
