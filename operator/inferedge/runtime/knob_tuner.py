"""The edge's online knob tuner: measures windows of served requests and moves the knobs.

It watches every batch the edge's batcher answers (`on_batch`). After a change of setting the
first `warmup` requests are discarded, as EcoEdgeInfer did; the next `window` requests make one
window: their mean latency (arrival to answer, queueing included), their energy per request and
their mean inter-arrival time become a `Measurement`. The first window runs at the maximum
setting and gives E0 and L0 (again whenever the arrival rate moves by more than
`arrival_change` from the rate they were measured at, as EcoEdgeInfer measured them per load);
from then on an optimiser from `core` (or optuna's, for `bayes`)
proposes each next setting and `Knobs.apply` moves the batch size and the clocks between
batches. `dvfs` serves the largest batch, with knobs built to leave the clocks to the node's
governors.

What measures energy and what moves the clocks are small interfaces, so the same tuner runs on a
Jetson (the node agent, the INA3221) and in `inferedge run` (an emulated device, labelled so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from inferedge.core.ecogd import ARRIVAL_CHANGE, EcoGD
from inferedge.core.errors import one_line
from inferedge.core.knob_search import EpsilonGreedy, GridSearch, LinearSweep, MaxSettings
from inferedge.core.knobs import Measurement, Optimiser, Reference, SearchSpace, Setting, cost
from inferedge.runtime.edge_batching import BatchRecord

log = logging.getLogger(__name__)

OptimiserName = Literal["ecogd", "grid", "linear", "max", "dvfs", "bayes", "bandit"]
OPTIMISERS: tuple[OptimiserName, ...] = get_args(OptimiserName)
# An edge tunes for as long as it serves, a window every few seconds: only the latest windows
# are kept (a day at one window a second would otherwise be 86,400 of them in memory and in
# every /tuning answer).
KEPT_WINDOWS = 2048


class Knobs(Protocol):
    """What moves the knobs of one edge server."""

    @property
    def space(self) -> SearchSpace:
        """The settings the knobs accept (steps index the node's clock tables)."""
        ...

    async def apply(self, setting: Setting) -> None:
        """Serve from the next batch on at `setting` (knobs that leave the clocks to the
        node's governors set only the batch size)."""
        ...

    def describe(self, setting: Setting) -> dict[str, float]:
        """The setting in units people read: CPU and GPU kHz, batch size."""
        ...


class EnergyMeter(Protocol):
    """Energy drawn over one window; `emulated` says whether it is a model's figure."""

    @property
    def emulated(self) -> bool:
        """Whether the energy is a model's, never to be mixed with measured energy."""
        ...

    def begin(self) -> None:
        """A window starts."""
        ...

    def batch(self, record: BatchRecord, setting: Setting) -> None:
        """One batch of the window was answered at `setting`."""
        ...

    def end(self) -> float:
        """The window ends: the joules drawn since `begin`."""
        ...


@dataclass(frozen=True)
class TunerWindow:
    """One measured window: where it ran, what it saw and what it cost."""

    index: int
    setting: Setting
    knobs: dict[str, float]
    measurement: Measurement
    cost: float
    converged: bool
    served_batch: float
    """Mean samples per batch actually run: at most the batch size, less at low load."""
    finished: float
    """`time.perf_counter()` at the window's last answer."""
    emulated: bool


def build_optimiser(
    name: OptimiserName,
    space: SearchSpace,
    reference: Reference,
    seed: int,
    arrival_change: float = ARRIVAL_CHANGE,
) -> Optimiser:
    """The optimiser called `name` over `space`; `dvfs` tunes nothing (the largest batch)."""
    rng = random.Random(seed)
    match name:
        case "ecogd":
            return EcoGD(space, reference, rng=rng, arrival_change=arrival_change)
        case "grid":
            return GridSearch(space, reference)
        case "linear":
            return LinearSweep(space, reference)
        case "max" | "dvfs":
            return MaxSettings(space)
        case "bandit":
            return EpsilonGreedy(space, reference, rng=rng)
        case "bayes":
            from inferedge.runtime.bayes_search import BayesianSearch  # optuna loads slowly

            return BayesianSearch(space, reference, seed=seed)
    raise ValueError(f"optimiser: expected one of {', '.join(OPTIMISERS)}, got {name!r}")


@dataclass
class _Window:
    """What the current window has gathered so far."""

    latencies: list[float]
    arrivals: list[float]
    samples: int = 0
    batches: int = 0


class KnobTuner:
    """Tunes the knobs window by window from the batches the edge answers (module docstring)."""

    def __init__(
        self,
        optimiser: OptimiserName,
        knobs: Knobs,
        meter: EnergyMeter,
        *,
        window: int,
        warmup: int,
        seed: int = 0,
        arrival_change: float = ARRIVAL_CHANGE,
        pipeline: str = "",
        on_window: Callable[[TunerWindow], None] | None = None,
    ) -> None:
        if optimiser not in OPTIMISERS:
            raise ValueError(
                f"optimiser: expected one of {', '.join(OPTIMISERS)}, got {optimiser!r}"
            )
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ValueError(f"window: must be an integer of at least 2 requests, got {window!r}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"warmup: must be a non-negative integer, got {warmup!r}")
        self._name = optimiser
        self._knobs, self._meter = knobs, meter
        self._window_size, self._warmup = window, warmup
        self._seed = seed
        self._arrival_change = arrival_change
        self.pipeline = pipeline
        self.on_window = on_window
        """Called with each window, once the next setting is chosen (a failure is logged)."""
        self._optimiser: Optimiser | None = None
        self._reference: Reference | None = None
        self._reference_interval_s = 1.0
        self._references = 0
        self._setting = knobs.space.max_setting()
        self._skip = warmup
        self._current: _Window | None = None
        self._windows: deque[TunerWindow] = deque(maxlen=KEPT_WINDOWS)
        self._window_count = 0
        self._applying: asyncio.Task[None] | None = None

    @property
    def setting(self) -> Setting:
        """The setting being served."""
        return self._setting

    @property
    def space(self) -> SearchSpace:
        """The settings being searched."""
        return self._knobs.space

    def describe_setting(self) -> dict[str, float]:
        """The setting being served, in kHz and samples."""
        return self._knobs.describe(self._setting)

    @property
    def load_changes(self) -> int:
        """How many times the arrival rate moved past `arrival_change` from the reference's,
        so that E0 and L0 were measured again."""
        return self._references

    @property
    def reference(self) -> Reference | None:
        """E0 and L0, once the first window has measured them."""
        return self._reference

    @property
    def windows(self) -> tuple[TunerWindow, ...]:
        """The latest `KEPT_WINDOWS` windows measured, oldest first."""
        return tuple(self._windows)

    @property
    def window_count(self) -> int:
        """How many windows were measured since the tuner started (kept or not)."""
        return self._window_count

    async def start(self) -> None:
        """Serve the maximum setting, where E0 and L0 are measured."""
        await self._apply(self._setting)

    def on_batch(self, record: BatchRecord) -> None:
        """The batcher's callback: count the batch into the window, close it when full."""
        if self._applying is not None and not self._applying.done():
            return  # the knobs are moving: this batch ran at a setting in between
        dropped = min(self._skip, record.requests)
        self._skip -= dropped
        if dropped == record.requests:
            return
        window = self._current
        if window is None:
            window = self._current = _Window([], [])
            self._meter.begin()
        window.latencies.extend(record.latencies_s[dropped:])
        window.arrivals.extend(record.started - w for w in record.waits_s[dropped:])
        window.samples += record.size
        window.batches += 1
        self._meter.batch(record, self._setting)
        if len(window.latencies) >= self._window_size:
            self._current = None
            self._close(window, record.finished)

    async def aclose(self) -> None:
        """Wait for a knob change in flight."""
        if self._applying is not None:
            with contextlib.suppress(Exception):
                await self._applying

    def _close(self, window: _Window, finished: float) -> None:
        energy = self._meter.end()
        requests = len(window.latencies)
        arrivals = sorted(window.arrivals)
        span = arrivals[-1] - arrivals[0]
        if span <= 0:  # one burst: no rate to speak of; measure again
            self._meter.begin()
            return
        measurement = Measurement(
            energy_j_per_request=energy / requests,
            latency_s=sum(window.latencies) / requests,
            requests=requests,
            arrival_interval_s=span / (requests - 1),
        )
        if self._reference is None:
            self._reference = Reference(
                max(measurement.energy_j_per_request, 1e-12), max(measurement.latency_s, 1e-9)
            )
            self._reference_interval_s = measurement.arrival_interval_s
            space, reference = self._knobs.space, self._reference
            self._optimiser = build_optimiser(
                self._name, space, reference, self._seed, self._arrival_change
            )
        assert self._optimiser is not None  # built with the reference above
        self._optimiser.observe(self._setting, measurement)
        done = TunerWindow(
            index=self._window_count,
            setting=self._setting,
            knobs=self._knobs.describe(self._setting),
            measurement=measurement,
            cost=cost(measurement, self._reference),
            converged=self._optimiser.converged,
            served_batch=window.samples / window.batches,
            finished=finished,
            emulated=self._meter.emulated,
        )
        self._windows.append(done)
        self._window_count += 1
        proposed = self._optimiser.next_setting()
        if self._load_changed(measurement):
            # E0 and L0 belong to a load (EcoEdgeInfer measured them per arrival pattern):
            # measure them again at the maximum settings, and search again from there.
            self._reference, self._optimiser = None, None
            self._references += 1
            proposed = self._knobs.space.max_setting()
        if proposed != self._setting:
            self._move(proposed)
        if self.on_window is not None:
            try:
                self.on_window(done)
            except Exception as exc:  # an observer's bug must not stop the tuning
                log.warning("on_window failed: %s", one_line(exc))

    def _load_changed(self, measurement: Measurement) -> bool:
        # rates are reciprocal intervals: rate / reference rate = reference interval / interval
        ratio = self._reference_interval_s / measurement.arrival_interval_s
        return abs(ratio - 1.0) > self._arrival_change

    def _move(self, setting: Setting) -> None:
        self._setting = setting
        self._skip = self._warmup
        self._applying = asyncio.get_running_loop().create_task(self._apply(setting))

    async def _apply(self, setting: Setting) -> None:
        try:
            await self._knobs.apply(setting)
        except Exception as exc:  # serving goes on at the clocks the node has
            log.warning("knobs: %s", one_line(exc))
