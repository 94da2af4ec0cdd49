"""An emulated edge device for the energy knobs: clock tables, a service-time model, a power model.

Everything here is a model, not a measurement: `EmulatedDevice.emulated` is always True, and the
simulator that runs it (`local.knob_simulator`) and the edge server that emulates it label every
figure they produce the same way. It lives in `core` because both need it (pure arithmetic).

Service time of one batch of b samples at CPU clock f_c and GPU clock f_g (F_c, F_g the top
clocks; r_c = F_c / f_c and r_g = F_g / f_g are the slow-down factors, 1 at the top):

    service_s = overhead_s * r_c + b * (cpu_per_sample_s * r_c + gpu_per_sample_s * r_g)

The per-batch overhead (launches, copies, Python) and part of each sample's work are CPU-bound;
the rest of each sample is GPU-bound. Memory is not a knob, so its effect on speed is folded in.

Power, with v(f) the supply voltage relative to its top value: flat at `v_low` up to the knee
frequency `v_knee * f_max`, then rising linearly to 1 at f_max (DVFS tables hold the minimum
voltage over their lower steps, so below the knee a lower clock only stretches the static power):

    dynamic(f)  = dynamic_max_w * (f / f_max) * v(f)^2          (one per clock domain, C f V^2)
    busy power  = static_w + dynamic_cpu + dynamic_gpu + memory_max_w * memory_level
    idle power  = static_w + idle_activity * (dynamic_cpu + dynamic_gpu)

`memory_level` (0..1) is the memory-controller clock the device's own governor picked. Jetsons
scale that clock with recent memory utilisation, and the knobs never pin it, so a busier device
pays more memory power per batch: the level rises linearly from 0 at busy fraction `memory_idle`
(since the previous batch started) to 1 at `memory_full`. This is what makes energy per request
at the maximum settings fall as requests arrive further apart, as EcoEdgeInfer's E0 did
(0.00804 : 0.00709 : 0.00669 at 50, 70 and 90 ms); without it a fixed-clock device spends the
same energy per batch at any load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from inferedge.core.knobs import SearchSpace, Setting


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: must be a positive finite number, got {value!r}")


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name}: must lie in [0, 1], got {value!r}")


@dataclass(frozen=True)
class ClockTable:
    """The frequencies (MHz, strictly ascending) one clock domain can be set to; steps index it."""

    mhz: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.mhz:
            raise ValueError("mhz: must list at least one frequency")
        for value in self.mhz:
            _check_positive("mhz", value)
        if any(b <= a for a, b in pairwise(self.mhz)):
            raise ValueError(f"mhz: must be strictly ascending, got {self.mhz}")

    @classmethod
    def even(cls, low_mhz: float, high_mhz: float, steps: int) -> ClockTable:
        """`steps` frequencies spread evenly from `low_mhz` to `high_mhz`, both included."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"steps: must be an integer of at least 2, got {steps!r}")
        _check_positive("low_mhz", low_mhz)
        _check_positive("high_mhz", high_mhz)
        gap = (high_mhz - low_mhz) / (steps - 1)
        return cls(tuple(round(low_mhz + i * gap, 1) for i in range(steps)))

    def __len__(self) -> int:
        return len(self.mhz)

    def at(self, step: int) -> float:
        """The frequency of `step`; ValueError outside the table."""
        if not 0 <= step < len(self.mhz):
            raise ValueError(f"step: must lie in 0..{len(self.mhz) - 1}, got {step}")
        return self.mhz[step]

    def step_at_least(self, mhz: float) -> int:
        """The lowest step whose frequency reaches `mhz`, or the top step if none does."""
        return next((i for i, f in enumerate(self.mhz) if f >= mhz), len(self.mhz) - 1)

    @property
    def top_mhz(self) -> float:
        """The highest frequency."""
        return self.mhz[-1]


@dataclass(frozen=True)
class EmulatedDevice:
    """An edge device as a service-time and power model (formulas in the module docstring)."""

    name: str
    cpu: ClockTable
    gpu: ClockTable
    max_batch: int
    overhead_s: float
    cpu_per_sample_s: float
    gpu_per_sample_s: float
    static_w: float
    cpu_dynamic_max_w: float
    gpu_dynamic_max_w: float
    memory_max_w: float
    memory_idle: float
    memory_full: float
    v_low: float
    v_knee: float
    idle_activity: float
    service_jitter: float = 0.0
    """Relative standard deviation of one batch's service time (0: deterministic)."""
    emulated: Literal[True] = True

    def __post_init__(self) -> None:
        if isinstance(self.max_batch, bool) or self.max_batch < 1:
            raise ValueError(f"max_batch: must be at least 1, got {self.max_batch!r}")
        for name in ("overhead_s", "cpu_per_sample_s", "gpu_per_sample_s", "static_w"):
            _check_positive(name, getattr(self, name))
        for name in ("cpu_dynamic_max_w", "gpu_dynamic_max_w", "memory_max_w"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
        _check_fraction("memory_idle", self.memory_idle)
        _check_fraction("memory_full", self.memory_full)
        if self.memory_full <= self.memory_idle:
            raise ValueError(
                f"memory_full: must exceed memory_idle={self.memory_idle}, got {self.memory_full}"
            )
        _check_fraction("v_low", self.v_low)
        _check_fraction("v_knee", self.v_knee)
        _check_fraction("idle_activity", self.idle_activity)
        _check_fraction("service_jitter", self.service_jitter)
        if self.emulated is not True:
            raise ValueError("emulated: an emulated device is always labelled emulated")

    def check(self, setting: Setting) -> None:
        """Reject a setting the device cannot run: a step past a table, or too big a batch."""
        self.cpu.at(setting.cpu_step)
        self.gpu.at(setting.gpu_step)
        if setting.batch > self.max_batch:
            raise ValueError(f"batch: must be at most {self.max_batch}, got {setting.batch}")

    def service_s(self, setting: Setting) -> float:
        """Seconds to serve one batch of `setting.batch` samples at `setting`'s clocks."""
        self.check(setting)
        r_cpu = self.cpu.top_mhz / self.cpu.at(setting.cpu_step)
        r_gpu = self.gpu.top_mhz / self.gpu.at(setting.gpu_step)
        per_sample = self.cpu_per_sample_s * r_cpu + self.gpu_per_sample_s * r_gpu
        return self.overhead_s * r_cpu + setting.batch * per_sample

    def power_w(self, setting: Setting, busy: bool, memory_level: float = 1.0) -> float:
        """Board power (W) at `setting`, serving a batch or idle; see the module docstring."""
        self.check(setting)
        _check_fraction("memory_level", memory_level)
        dynamic = self._dynamic_w(self.cpu, self.cpu_dynamic_max_w, setting.cpu_step)
        dynamic += self._dynamic_w(self.gpu, self.gpu_dynamic_max_w, setting.gpu_step)
        if not busy:
            return self.static_w + self.idle_activity * dynamic
        return self.static_w + dynamic + self.memory_max_w * memory_level

    def memory_level(self, busy_fraction: float) -> float:
        """The memory clock level the device's governor picks after `busy_fraction` of busy time."""
        span = self.memory_full - self.memory_idle
        return min(1.0, max(0.0, (busy_fraction - self.memory_idle) / span))

    def space(self) -> SearchSpace:
        """Every setting the device offers, unclamped."""
        return SearchSpace(
            cpu_steps=len(self.cpu), gpu_steps=len(self.gpu), max_batch=self.max_batch
        )

    def _dynamic_w(self, table: ClockTable, max_w: float, step: int) -> float:
        high, f = table.top_mhz, table.at(step)
        knee = self.v_knee * high
        rise = 0.0 if f <= knee else (f - knee) / (high - knee)
        volts = self.v_low + (1.0 - self.v_low) * rise
        return max_w * (f / high) * volts * volts


def xavier_nx(*, service_jitter: float = 0.0) -> EmulatedDevice:
    """A Jetson Xavier NX serving a ResNet-50-like model, as EcoEdgeInfer tuned it.

    25 CPU steps 115-1,907 MHz and 15 GPU steps 115-1,109 MHz, spread evenly; batch 1-16.
    A batch of 16 at the top clocks takes 3 + 16 x (0.4 + 1.6) = 35 ms, so at maximum settings the
    mean latency is 7.5 inter-arrivals (the wait for 16 to fill) plus 35 ms: 0.410, 0.560 and
    0.710 s at 50, 70 and 90 ms, against the published 0.415, 0.564 and 0.695 s. Power: 1.5 W
    static, 2 W CPU and 6 W GPU dynamic at the top clocks, 2.5 W memory at full clock (12 W under
    load); voltage flat at 60 % up to 40 % of each top clock, then rising to 100 %, which puts the
    energy-optimal clocks in the upper-middle of the tables. The memory governor goes from idle at
    2 % busy to full at 4.4 %, so that energy per request at maximum settings falls 1 : 0.89 : 0.83
    over 50, 70 and 90 ms, against the published 1 : 0.88 : 0.83.
    """
    return EmulatedDevice(
        name="xavier-nx (emulated)",
        cpu=ClockTable.even(115.0, 1907.0, 25),
        gpu=ClockTable.even(115.0, 1109.0, 15),
        max_batch=16,
        overhead_s=0.003,
        cpu_per_sample_s=0.0004,
        gpu_per_sample_s=0.0016,
        static_w=1.5,
        cpu_dynamic_max_w=2.0,
        gpu_dynamic_max_w=6.0,
        memory_max_w=2.5,
        memory_idle=0.02,
        memory_full=0.044,
        v_low=0.6,
        v_knee=0.4,
        idle_activity=0.1,
        service_jitter=service_jitter,
    )
