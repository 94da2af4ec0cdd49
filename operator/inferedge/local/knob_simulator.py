"""A discrete-event simulation (simpy) of an edge server on an emulated device, and a tuning loop.

The server keeps a FIFO queue; it starts a batch once `setting.batch` requests wait (or, with
`max_wait_s`, once the oldest has waited that long, with what is there) and serves it in
`device.service_s` of the batch it took.
Energy is metered per batch, as EcoEdgeInfer's server read the board's power rails around each
batch: a request is charged its share of its batch's busy energy. Idle power is integrated over
the idle time too and reported (`idle_energy_j`), but kept out of the energy per request, because
the published E0 (about 8 mJ per request, falling as requests arrive further apart) cannot include
idle power: idle time per request grows with the gap between requests. Every result here is
labelled `emulated`; none of it is a measurement.
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Any, Literal

import simpy

from inferedge.core.emulated_device import EmulatedDevice
from inferedge.core.knobs import Measurement, Optimiser, Reference, SearchSpace, Setting, cost
from inferedge.local.arrivals import ArrivalPattern
from inferedge.local.governor import GovernorModel

WINDOW_REQUESTS = 316
"""Requests kept per window: EcoEdgeInfer measured 416 and discarded the first 100."""
WARMUP_REQUESTS = 100
# a jittered batch never takes less than this share of its modelled time
_MIN_JITTER_FACTOR = 0.1


@dataclass(frozen=True)
class EmulatedWindow:
    """One simulated measurement window at one setting: what an optimiser sees (`measurement`)
    and what a report wants besides. `busy_s`, `idle_s` and `idle_energy_j` cover the window's
    span, from its first kept arrival to its last completion.
    """

    setting: Setting
    measurement: Measurement
    p95_s: float
    batches: int
    busy_s: float
    idle_s: float
    busy_energy_j: float
    idle_energy_j: float
    cpu_mhz: float
    gpu_mhz: float
    """The mean clocks while busy: the setting's own, or the governors' (`governor` given)."""
    emulated: Literal[True] = True


@dataclass(frozen=True)
class _Batch:
    start: float
    duration: float
    size: int
    power_w: float
    cpu_mhz: float
    gpu_mhz: float


class _Server:
    """The simpy processes of one window: arrivals into the queue, and the batching server."""

    def __init__(
        self,
        device: EmulatedDevice,
        setting: Setting,
        rng: random.Random,
        *,
        total: int,
        max_wait_s: float | None,
        governor: GovernorModel | None,
    ) -> None:
        self.env = simpy.Environment()
        self.device, self.setting, self.rng = device, setting, rng
        self.total, self.max_wait_s, self.governor = total, max_wait_s, governor
        self.utilisation = 0.0  # the governors' signal, when they run the clocks
        self.arrivals: list[float] = []
        self.completions: list[float] = []
        self.batches: list[_Batch] = []
        self.charges: list[float] = []
        self.queue: list[int] = []
        self.wake: simpy.Event | None = None
        self.finished = self.env.event()

    def arrive(self, pattern: ArrivalPattern) -> Generator[simpy.Event, Any, None]:
        for gap in pattern.gaps(self.rng):
            if gap > 0:  # zero gaps (bursts) arrive at the same instant without an event
                yield self.env.timeout(gap)
            self.queue.append(len(self.arrivals))
            self.arrivals.append(self.env.now)
            full = len(self.queue) >= self.setting.batch
            # with a max wait the first queued request starts the server's deadline
            first = self.max_wait_s is not None and len(self.queue) == 1
            if self.wake is not None and (full or first):
                self.wake.succeed()
                self.wake = None

    def serve(self) -> Generator[simpy.Event, Any, None]:
        previous: _Batch | None = None
        while True:
            yield from self._wait_for_batch()
            taken, self.queue = self.queue[: self.setting.batch], self.queue[self.setting.batch :]
            start = self.env.now
            busy = 1.0 if previous is None else previous.duration / (start - previous.start)
            level = self.device.memory_level(busy)
            # a partial batch (max wait) is served at its own size
            served = replace(self.setting, batch=len(taken))
            duration, power, cpu_mhz, gpu_mhz = self._run(served, previous, level)
            yield self.env.timeout(duration)
            previous = _Batch(start, duration, len(taken), power, cpu_mhz, gpu_mhz)
            self.batches.append(previous)
            self.completions.extend(self.env.now for _ in taken)
            self.charges.extend(power * duration / len(taken) for _ in taken)
            if len(self.completions) >= self.total:
                self.finished.succeed()
                return

    def _run(
        self, served: Setting, previous: _Batch | None, memory_level: float
    ) -> tuple[float, float, float, float]:
        """Duration, mean power and mean clocks of one batch, at fixed clocks or governed."""
        jitter = self._jitter()
        if self.governor is None:
            duration = self.device.service_s(served) * jitter
            power = self.device.power_w(self.setting, busy=True, memory_level=memory_level)
            cpu, gpu = self.device.cpu, self.device.gpu
            return duration, power, cpu.at(served.cpu_step), gpu.at(served.gpu_step)
        if previous is not None:
            idle = self.env.now - previous.start - previous.duration
            self.utilisation = self.governor.decay(self.utilisation, idle)
        run = self.governor.serve(
            self.device, served.batch, self.utilisation, memory_level=memory_level, jitter=jitter
        )
        self.utilisation = run.utilisation
        return run.duration_s, run.energy_j / run.duration_s, run.cpu_mhz, run.gpu_mhz

    def _wait_for_batch(self) -> Generator[simpy.Event, Any, None]:
        while len(self.queue) < self.setting.batch:
            self.wake = self.env.event()
            if self.max_wait_s is None or not self.queue:
                yield self.wake
                continue
            remaining = self.arrivals[self.queue[0]] + self.max_wait_s - self.env.now
            if remaining <= 1e-12:
                self.wake = None
                return
            yield self.wake | self.env.timeout(remaining)
            self.wake = None

    def _jitter(self) -> float:
        if self.device.service_jitter == 0.0:
            return 1.0
        return max(_MIN_JITTER_FACTOR, self.rng.gauss(1.0, self.device.service_jitter))


def simulate_window(
    device: EmulatedDevice,
    setting: Setting,
    pattern: ArrivalPattern,
    *,
    rng: random.Random,
    requests: int = WINDOW_REQUESTS,
    warmup: int = WARMUP_REQUESTS,
    max_wait_s: float | None = None,
    governor: GovernorModel | None = None,
) -> EmulatedWindow:
    """Simulate `warmup + requests` requests from an empty queue and keep the last `requests`.

    Latency is completion minus arrival (queueing and the wait for a batch to fill included);
    energy per request is the kept requests' share of their batches' busy energy; the arrival
    interval is the mean gap before each kept request. With `governor`, the device's default
    governors run the clocks (the setting's clocks are ignored, its batch is kept).
    """
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
        raise ValueError(f"requests: must be a positive integer, got {requests!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup: must be a non-negative integer, got {warmup!r}")
    if max_wait_s is not None and not (math.isfinite(max_wait_s) and max_wait_s > 0):
        raise ValueError(f"max_wait_s: must be a positive finite number or None, got {max_wait_s}")
    device.check(setting)
    server = _Server(
        device, setting, rng, total=warmup + requests, max_wait_s=max_wait_s, governor=governor
    )
    server.env.process(server.arrive(pattern))
    server.env.process(server.serve())
    server.env.run(until=server.finished)

    kept = range(warmup, warmup + requests)
    before_first = server.arrivals[warmup - 1] if warmup > 0 else 0.0
    interval = (server.arrivals[warmup + requests - 1] - before_first) / requests
    if interval <= 0:
        raise ValueError(f"requests: the window's {requests} arrivals span no time; use more")
    latencies = sorted(server.completions[i] - server.arrivals[i] for i in kept)
    begin, end = server.arrivals[warmup], server.completions[warmup + requests - 1]
    busy_s = busy_energy_j = cpu_weighted = gpu_weighted = 0.0
    for batch in server.batches:
        overlap = min(end, batch.start + batch.duration) - max(begin, batch.start)
        if overlap > 0:
            busy_s += overlap
            busy_energy_j += overlap * batch.power_w
            cpu_weighted += overlap * batch.cpu_mhz
            gpu_weighted += overlap * batch.gpu_mhz
    idle_s = max(0.0, (end - begin) - busy_s)
    idle_clocks = setting if governor is None else Setting(0, 0, setting.batch)
    measurement = Measurement(
        energy_j_per_request=sum(server.charges[i] for i in kept) / requests,
        latency_s=sum(latencies) / requests,
        requests=requests,
        arrival_interval_s=interval,
    )
    return EmulatedWindow(
        setting=setting,
        measurement=measurement,
        p95_s=latencies[math.ceil(0.95 * requests) - 1],
        batches=sum(1 for b in server.batches if b.start + b.duration > begin),
        busy_s=busy_s,
        idle_s=idle_s,
        busy_energy_j=busy_energy_j,
        # governors drop to the lowest clocks when idle
        idle_energy_j=idle_s * device.power_w(idle_clocks, busy=False),
        cpu_mhz=cpu_weighted / busy_s if busy_s > 0 else device.cpu.at(setting.cpu_step),
        gpu_mhz=gpu_weighted / busy_s if busy_s > 0 else device.gpu.at(setting.gpu_step),
    )


def measure_reference(
    device: EmulatedDevice, space: SearchSpace, pattern: ArrivalPattern, *, rng: random.Random
) -> Reference:
    """E0 and L0: one window at the space's maximum setting under `pattern`, as the paper did."""
    window = simulate_window(device, space.max_setting(), pattern, rng=rng)
    return Reference.from_measurement(window.measurement)


@dataclass(frozen=True)
class TunedWindow:
    """One window of a tuning run: where it ran, what it saw, its cost, and whether the optimiser
    called itself converged after observing it.
    """

    setting: Setting
    window: EmulatedWindow
    cost: float
    converged: bool


@dataclass(frozen=True)
class TuningRun:
    """A tuning run and its summary (all emulated).

    `final` is one more window at the optimiser's `best()` after the run, not shown to it: its
    cost is `converged_cost`, and `mean_ms`, `p95_ms` and `energy_j_per_request` come from it (the
    paper's metrics after convergence). `converged_at` counts the windows until the optimiser
    first called itself converged (None if it never did); `exploration_cost` is the excess cost
    over `converged_cost`, summed over those windows (all windows if it never converged): what the
    search paid on the way.
    """

    windows: tuple[TunedWindow, ...]
    reference: Reference
    best: Setting
    final: EmulatedWindow
    converged_cost: float
    converged_at: int | None
    exploration_cost: float
    emulated: Literal[True] = True

    @property
    def mean_ms(self) -> float:
        """Mean latency after convergence, ms."""
        return self.final.measurement.latency_s * 1000.0

    @property
    def p95_ms(self) -> float:
        """95th-percentile latency after convergence, ms."""
        return self.final.p95_s * 1000.0

    @property
    def energy_j_per_request(self) -> float:
        """Energy per request after convergence."""
        return self.final.measurement.energy_j_per_request


def tune(
    optimiser: Optimiser,
    device: EmulatedDevice,
    pattern: ArrivalPattern,
    windows: int,
    *,
    rng: random.Random,
    reference: Reference,
    max_wait_s: float | None = None,
    governor: GovernorModel | None = None,
) -> TuningRun:
    """Drive `optimiser` for `windows` windows on the emulated device under `pattern`.

    Each window starts from an empty queue: its 100-request warm-up absorbs the change of setting,
    and an overloaded setting does not hand its backlog to the next one, which would charge that
    setting for the previous one's mistake. `reference` must be the one the optimiser was built
    with (see `measure_reference`).
    """
    if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
        raise ValueError(f"windows: must be a positive integer, got {windows!r}")
    record: list[TunedWindow] = []
    converged_at: int | None = None
    for _ in range(windows):
        setting = optimiser.next_setting()
        window = simulate_window(
            device, setting, pattern, rng=rng, max_wait_s=max_wait_s, governor=governor
        )
        optimiser.observe(setting, window.measurement)
        converged = optimiser.converged
        if converged and converged_at is None:
            converged_at = len(record) + 1
        record.append(TunedWindow(setting, window, cost(window.measurement, reference), converged))
    best = optimiser.best()
    final = simulate_window(
        device, best, pattern, rng=rng, max_wait_s=max_wait_s, governor=governor
    )
    final_cost = cost(final.measurement, reference)
    paid = record[:converged_at] if converged_at is not None else record
    return TuningRun(
        windows=tuple(record),
        reference=reference,
        best=best,
        final=final,
        converged_cost=final_cost,
        converged_at=converged_at,
        exploration_cost=sum(max(0.0, w.cost - final_cost) for w in paid),
    )
