"""The energy knobs (CPU frequency, GPU frequency, batch size), their search space and the cost.

A setting names frequency steps by index into the device's frequency tables, not by MHz: the
tables belong to the device (or its emulation), and every optimiser only needs to step up and
down. The cost is EcoEdgeInfer's: the mean of energy per request and latency, each relative to
its value at the maximum settings, so both terms weigh about one at the start of a search.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


def _check_int(name: str, value: int, low: int) -> None:
    # bool is an int subclass; True as a step index is always a caller's mistake
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name}: must be at least {low}, got {value}")


def _check_float(name: str, value: float, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name}: must be positive, got {value}")
    if value < 0:
        raise ValueError(f"{name}: must not be negative, got {value}")


@dataclass(frozen=True, order=True)
class Setting:
    """One point of the knob space: CPU and GPU frequency step indices, and the batch size."""

    cpu_step: int
    gpu_step: int
    batch: int

    def __post_init__(self) -> None:
        _check_int("cpu_step", self.cpu_step, 0)
        _check_int("gpu_step", self.gpu_step, 0)
        _check_int("batch", self.batch, 1)


@dataclass(frozen=True)
class SearchSpace:
    """The box of settings an optimiser may propose.

    The device offers CPU steps 0..cpu_steps-1, GPU steps 0..gpu_steps-1 and batches
    1..max_batch; the optimiser is clamped from below at min_cpu_step, min_gpu_step and
    min_batch, because the slowest clocks and smallest batches are never worth a window.
    """

    cpu_steps: int
    gpu_steps: int
    max_batch: int
    min_cpu_step: int = 0
    min_gpu_step: int = 0
    min_batch: int = 1

    def __post_init__(self) -> None:
        _check_int("cpu_steps", self.cpu_steps, 1)
        _check_int("gpu_steps", self.gpu_steps, 1)
        _check_int("max_batch", self.max_batch, 1)
        _check_int("min_cpu_step", self.min_cpu_step, 0)
        _check_int("min_gpu_step", self.min_gpu_step, 0)
        _check_int("min_batch", self.min_batch, 1)
        if self.min_cpu_step >= self.cpu_steps:
            raise ValueError(
                f"min_cpu_step: must be below cpu_steps={self.cpu_steps}, got {self.min_cpu_step}"
            )
        if self.min_gpu_step >= self.gpu_steps:
            raise ValueError(
                f"min_gpu_step: must be below gpu_steps={self.gpu_steps}, got {self.min_gpu_step}"
            )
        if self.min_batch > self.max_batch:
            raise ValueError(
                f"min_batch: must be at most max_batch={self.max_batch}, got {self.min_batch}"
            )

    def max_setting(self) -> Setting:
        """The fastest clocks and the largest batch: where E0 and L0 are measured."""
        return Setting(self.cpu_steps - 1, self.gpu_steps - 1, self.max_batch)

    def min_setting(self) -> Setting:
        """The lowest corner of the clamped space."""
        return Setting(self.min_cpu_step, self.min_gpu_step, self.min_batch)

    def contains(self, setting: Setting) -> bool:
        """Whether `setting` lies inside the clamped space."""
        return (
            self.min_cpu_step <= setting.cpu_step < self.cpu_steps
            and self.min_gpu_step <= setting.gpu_step < self.gpu_steps
            and self.min_batch <= setting.batch <= self.max_batch
        )

    def clamp(self, setting: Setting) -> Setting:
        """The nearest setting inside the clamped space, axis by axis."""
        return Setting(
            min(max(setting.cpu_step, self.min_cpu_step), self.cpu_steps - 1),
            min(max(setting.gpu_step, self.min_gpu_step), self.gpu_steps - 1),
            min(max(setting.batch, self.min_batch), self.max_batch),
        )

    def offset(self, setting: Setting, d_cpu: int, d_gpu: int, d_batch: int) -> Setting | None:
        """`setting` moved by the given steps, or None when that leaves the clamped space."""
        cpu, gpu, batch = (
            setting.cpu_step + d_cpu,
            setting.gpu_step + d_gpu,
            setting.batch + d_batch,
        )
        if cpu < 0 or gpu < 0 or batch < 1:
            return None
        moved = Setting(cpu, gpu, batch)
        return moved if self.contains(moved) else None

    def neighbours(self, setting: Setting) -> tuple[Setting, ...]:
        """The side neighbours (one step along one axis) inside the clamped space, at most 6.

        The order is fixed (CPU down, up, GPU down, up, batch down, up) so that optimisers built
        on it are deterministic.
        """
        moves = ((-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1))
        found = (self.offset(setting, *move) for move in moves)
        return tuple(s for s in found if s is not None)

    def all_settings(self) -> Iterator[Setting]:
        """Every setting of the clamped space, in ascending order."""
        for cpu in range(self.min_cpu_step, self.cpu_steps):
            for gpu in range(self.min_gpu_step, self.gpu_steps):
                for batch in range(self.min_batch, self.max_batch + 1):
                    yield Setting(cpu, gpu, batch)

    @property
    def size(self) -> int:
        """How many settings the clamped space holds."""
        return (
            (self.cpu_steps - self.min_cpu_step)
            * (self.gpu_steps - self.min_gpu_step)
            * (self.max_batch - self.min_batch + 1)
        )


def xavier_nx() -> SearchSpace:
    """The Jetson Xavier NX space EcoEdgeInfer searched.

    25 CPU steps (115-1,907 MHz), 15 GPU steps (115-1,109 MHz), batch 1-16, clamped from below at
    the 5th step of each clock (index 4) and batch 4: 21 x 11 x 13 = 3,003 settings.
    """
    return SearchSpace(
        cpu_steps=25, gpu_steps=15, max_batch=16, min_cpu_step=4, min_gpu_step=4, min_batch=4
    )


@dataclass(frozen=True)
class Measurement:
    """What one measurement window saw at one setting.

    EcoEdgeInfer's windows were 416 requests with the first 100 discarded as warm-up; `requests`
    counts the ones kept. Latency includes the wait for a batch to fill.
    """

    energy_j_per_request: float
    latency_s: float
    requests: int
    arrival_interval_s: float

    def __post_init__(self) -> None:
        _check_float("energy_j_per_request", self.energy_j_per_request, positive=False)
        _check_float("latency_s", self.latency_s, positive=False)
        _check_int("requests", self.requests, 1)
        _check_float("arrival_interval_s", self.arrival_interval_s, positive=True)

    @property
    def arrival_rate_hz(self) -> float:
        """Requests per second, the reciprocal of the mean inter-arrival time."""
        return 1.0 / self.arrival_interval_s


@dataclass(frozen=True)
class Reference:
    """E0 and L0: energy per request and latency measured at the maximum settings."""

    energy_j_per_request: float
    latency_s: float

    def __post_init__(self) -> None:
        _check_float("energy_j_per_request", self.energy_j_per_request, positive=True)
        _check_float("latency_s", self.latency_s, positive=True)

    @classmethod
    def from_measurement(cls, measurement: Measurement) -> Reference:
        """The reference a window at the maximum settings gives."""
        return cls(measurement.energy_j_per_request, measurement.latency_s)


def cost(measurement: Measurement, reference: Reference) -> float:
    """EcoEdgeInfer's cost: 1/2 (E/E0 + L/L0); 1.0 at the reference itself, lower is better."""
    return 0.5 * (
        measurement.energy_j_per_request / reference.energy_j_per_request
        + measurement.latency_s / reference.latency_s
    )


class Optimiser(Protocol):
    """What every knob optimiser offers its driver, which loops: measure `next_setting()` for one
    window, hand the window to `observe`, repeat. `best()` is what to serve if the search stopped
    now; what `converged` means is documented by each optimiser.
    """

    def next_setting(self) -> Setting:
        """The setting to measure next; asking twice without an observation gives the same one."""
        ...

    def observe(self, setting: Setting, measurement: Measurement) -> None:
        """Record one window measured at `setting`."""
        ...

    def best(self) -> Setting:
        """The optimiser's current choice."""
        ...

    @property
    def converged(self) -> bool:
        """Whether the search has settled, in the optimiser's own sense."""
        ...

    @property
    def measurements(self) -> int:
        """How many windows have been observed."""
        ...


class WindowCount:
    """The `measurements` count of the Optimiser protocol, for optimisers whose only use of it is
    to report it: `observe` calls `_counted()` once per window."""

    _count = 0

    @property
    def measurements(self) -> int:
        """Windows observed so far."""
        return self._count

    def _counted(self) -> None:
        self._count += 1


def check_in_space(space: SearchSpace, setting: Setting) -> None:
    """Reject an observation or proposal outside the clamped space."""
    if not space.contains(setting):
        raise ValueError(f"setting: {setting} lies outside the clamped search space")
