"""The default DVFS governors of an emulated device, batch by batch (the `dvfs` baseline).

Linux's `schedutil` (CPU) and Jetson's load-based GPU governor do not pick one clock per window:
they follow a utilisation signal that rises while the device computes and decays while it idles,
and re-pick the clock every few milliseconds. schedutil's signal is PELT's, a geometric average
with a 32 ms half-life, and it asks for `1.25 x utilisation x top clock` (frequency-invariant
utilisation). So a batch that starts after a long idle starts at low clocks and ramps up while it
runs; one that follows closely starts high. Modelled here, per rate-limit period:

- while a batch computes, u <- 1 - (1 - u) * 2^(-dt / half_life); while idle, u <- u * 2^(...);
- each period both clocks are set to the lowest step reaching headroom * u * top (both see the
  same signal, since the CPU feeds every GPU batch);
- a batch's work is its service time at the top clocks, split as the device's model splits it:
  the CPU-bound part first, then the GPU-bound part, each progressing at clock / top clock;
- energy is the busy power at the clocks of each period, times the period.

A window-level fixed point (one clock per window from the window's mean utilisation) would settle
at the lowest clocks whenever the mean utilisation is low, which no real governor does under
batches that last tens of milliseconds. Every figure this produces is emulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from inferedge.core.emulated_device import EmulatedDevice
from inferedge.core.knobs import Measurement, Setting, WindowCount

PELT_HALF_LIFE_S = 0.032
HEADROOM = 1.25
PERIOD_S = 0.004
"""How often the clocks are re-picked: schedutil's rate limit is a few milliseconds on ARM."""


@dataclass(frozen=True)
class GovernedBatch:
    """One batch served under the governors: how long it took, what it drew, where it left the
    utilisation signal, and the time-weighted mean clocks (MHz) it ran at."""

    duration_s: float
    energy_j: float
    utilisation: float
    cpu_mhz: float
    gpu_mhz: float


@dataclass(frozen=True)
class GovernorModel:
    """schedutil-like governors on both clocks (see the module docstring)."""

    half_life_s: float = PELT_HALF_LIFE_S
    headroom: float = HEADROOM
    period_s: float = PERIOD_S

    def __post_init__(self) -> None:
        for name in ("half_life_s", "headroom", "period_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}: must be a positive finite number, got {value!r}")

    def decay(self, utilisation: float, idle_s: float) -> float:
        """The utilisation signal after `idle_s` seconds without work."""
        return float(utilisation * 2.0 ** (-max(0.0, idle_s) / self.half_life_s))

    def serve(
        self,
        device: EmulatedDevice,
        batch: int,
        utilisation: float,
        *,
        memory_level: float,
        jitter: float = 1.0,
    ) -> GovernedBatch:
        """Serve one batch of `batch` samples starting from `utilisation`, period by period."""
        device.check(Setting(0, 0, batch))
        work = [
            ("cpu", (device.overhead_s + batch * device.cpu_per_sample_s) * jitter),
            ("gpu", batch * device.gpu_per_sample_s * jitter),
        ]
        elapsed = energy = cpu_weighted = gpu_weighted = 0.0
        u = utilisation
        for domain, total in work:
            remaining = total
            while remaining > 1e-12:
                cpu_step = device.cpu.step_at_least(self.headroom * u * device.cpu.top_mhz)
                gpu_step = device.gpu.step_at_least(self.headroom * u * device.gpu.top_mhz)
                table, step = (device.cpu, cpu_step) if domain == "cpu" else (device.gpu, gpu_step)
                rate = table.at(step) / table.top_mhz
                dt = min(self.period_s, remaining / rate)
                remaining -= dt * rate
                power = device.power_w(
                    Setting(cpu_step, gpu_step, batch), busy=True, memory_level=memory_level
                )
                energy += power * dt
                cpu_weighted += device.cpu.at(cpu_step) * dt
                gpu_weighted += device.gpu.at(gpu_step) * dt
                elapsed += dt
                u = 1.0 - (1.0 - u) * 2.0 ** (-dt / self.half_life_s)
        return GovernedBatch(elapsed, energy, u, cpu_weighted / elapsed, gpu_weighted / elapsed)


class DefaultGovernors(WindowCount):
    """The `dvfs` baseline as an Optimiser: a fixed batch, the clocks left to the governors.

    It proposes the top clocks at its batch (the simulator, given a `GovernorModel`, lets the
    governors run the clocks instead); there is nothing to search, so it is converged from the
    first window. EcoEdgeInfer ran it at batches 8 and 16.
    """

    def __init__(self, device: EmulatedDevice, *, batch: int) -> None:
        self._setting = Setting(len(device.cpu) - 1, len(device.gpu) - 1, batch)
        device.check(self._setting)

    @property
    def converged(self) -> bool:
        """True once a window was observed: the governors are the whole policy."""
        return self.measurements > 0

    def next_setting(self) -> Setting:
        """The fixed batch (the clocks are the governors')."""
        return self._setting

    def observe(self, setting: Setting, measurement: Measurement) -> None:
        """Count the window; the governors need nothing from it."""
        self._counted()

    def best(self) -> Setting:
        """The fixed batch."""
        return self._setting
