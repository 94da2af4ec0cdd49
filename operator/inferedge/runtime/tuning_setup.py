"""Wiring the knob tuner into an edge server: which knobs and which energy meter, the report
it serves (`GET /tuning`) and the metrics it keeps.

On a node, the clocks move through the node's clock agent and energy comes from a real sensor
(INA3221 or RAPL). Without an agent the tuner tunes the batch size only, and without a sensor it
does not start: a cost without energy would be latency alone, which is not what was asked for.
With `emulation` (`inferedge run`), both are the emulated device's, and every figure says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from inferedge.api.tuning import KhzRange, KnobEmulationSpec, TuningReport, TuningSpec, WindowReport
from inferedge.core.clock_wishes import KINDS
from inferedge.core.errors import one_line
from inferedge.dnn.energy import detect_energy_sensor
from inferedge.runtime.clock_client import ClockAgentClient, ClockAgentError
from inferedge.runtime.edge_batching import EdgeBatcher
from inferedge.runtime.knob_devices import (
    AgentKnobs,
    ClockSteps,
    EmulatedEnergy,
    EmulatedKnobs,
    SensorEnergy,
    device_khz,
    knob_space,
)
from inferedge.runtime.knob_tuner import KEPT_WINDOWS, EnergyMeter, Knobs, KnobTuner, TunerWindow
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.oip_codec import bad

log = logging.getLogger(__name__)


def bounded(
    steps: Sequence[int], bounds: KhzRange, skip_slowest: float, what: str
) -> tuple[int, ...]:
    """The steps inside `bounds`, less the slowest `skip_slowest` share of them; ValueError
    naming `what` when none is left."""
    low, high = bounds.min_khz, bounds.max_khz
    within = [k for k in steps if (low is None or k >= low) and (high is None or k <= high)]
    kept = tuple(within[int(len(within) * skip_slowest) :])
    if not kept:
        raise ValueError(
            f"tuning.{what}: no clock step lies within {low or 'the lowest'}.."
            f"{high or 'the highest'} kHz (the node offers "
            f"{steps[0] if steps else '-'}..{steps[-1] if steps else '-'} kHz)"
        )
    return kept


@dataclass
class ActiveTuning:
    """A running tuner and what it needs closed."""

    tuner: KnobTuner
    optimiser: str
    emulated: bool
    clocks: bool
    started: float
    """`time.perf_counter()` when the tuner started."""
    started_unix: float
    client: ClockAgentClient | None = None

    def report(self, latest: int | None = None) -> TuningReport:
        """The report `/tuning` serves, with the latest `latest` windows (all kept if None)."""
        reference = self.tuner.reference
        windows = self.tuner.windows
        if latest is not None:
            windows = windows[len(windows) - latest :] if latest else ()
        return TuningReport(
            optimiser=self.optimiser,
            emulated=self.emulated,
            clocks=self.clocks,
            started_unix=self.started_unix,
            reference=None if reference is None else {
                "energy_j_per_request": reference.energy_j_per_request,
                "latency_s": reference.latency_s,
            },
            setting=self.tuner.describe_setting(),
            window_count=self.tuner.window_count,
            windows=[_window(w, self.started) for w in windows],
        )  # fmt: skip

    async def handle(self, request: web.Request) -> web.Response:
        """`GET /tuning[?windows=N]`: N (0 to KEPT_WINDOWS) keeps the latest N windows only."""
        latest = _latest(request.query.getall("windows", []))
        return web.Response(
            body=self.report(latest).model_dump_json(), content_type="application/json"
        )

    async def aclose(self) -> None:
        """Wait for a knob change in flight, and give the clocks back to the node."""
        await self.tuner.aclose()
        if self.client is not None:
            try:
                await self.client.release(self.tuner.pipeline)
            except ClockAgentError as exc:
                log.warning("tuning: %s", one_line(exc))
            await self.client.close()


def _latest(values: list[str]) -> int | None:
    if not values:
        return None
    if len(values) > 1 or not values[0].isdecimal() or int(values[0]) > KEPT_WINDOWS:
        raise bad("windows", f"expected one integer from 0 to {KEPT_WINDOWS}, got {values!r}")
    return int(values[0])


def _window(window: TunerWindow, started: float) -> WindowReport:
    m = window.measurement
    return WindowReport(
        index=window.index,
        finished_s=window.finished - started,
        cpu_khz=window.knobs["cpu_khz"],
        gpu_khz=window.knobs["gpu_khz"],
        batch=window.setting.batch,
        served_batch=window.served_batch,
        arrival_rate_hz=m.arrival_rate_hz,
        latency_ms=m.latency_s * 1000.0,
        energy_j_per_request=m.energy_j_per_request,
        cost=window.cost,
        converged=window.converged,
    )


async def start_tuning(
    tuning: TuningSpec,
    batcher: EdgeBatcher,
    *,
    pipeline: str,
    emulation: KnobEmulationSpec | None,
    agent_socket: Path,
    started: float,
    sysfs_root: Path = Path("/"),
) -> ActiveTuning | None:
    """Build the knobs and the meter `tuning` and the node allow, start the tuner on
    `batcher`, and return it; None (logged in one line) when there is nothing to tune with.
    `sysfs_root` is where the energy sensors are looked for (tests give a fake tree)."""
    metrics = batcher.dataplane.metrics
    clocks = tuning.clocks and tuning.optimiser != "dvfs"
    knobs: Knobs
    meter: EnergyMeter
    tables: ClockSteps
    client = None
    if emulation is not None:
        device = emulation.device()
        tables = {"cpu": device_khz(device.cpu), "gpu": device_khz(device.gpu)}
        steps = _steps(tables, tuning, clocks)
        space = knob_space(steps, min_batch=tuning.min_batch, max_batch=tuning.max_batch)
        emulated = EmulatedKnobs(device, steps, space, batcher)
        knobs, meter = emulated, EmulatedEnergy(device, emulated)
    else:
        sensor = detect_energy_sensor(sysfs_root)
        if sensor is None:
            log.warning(
                "tuning: off: no readable energy sensor (INA3221 or RAPL) on this node, and a "
                "cost without energy is latency alone"
            )
            return None
        meter = SensorEnergy(sensor)
        client = ClockAgentClient(agent_socket)
        try:
            reply = await client.request(pipeline)
            tables = {kind: tuple(reply.steps.get(kind, ())) for kind in KINDS}
        except ClockAgentError as exc:
            log.warning("tuning: the batch size only: %s", one_line(exc))
            await client.close()
            client, tables, clocks = None, {"cpu": (1,), "gpu": (1,)}, False
        if not all(tables.values()):
            tables, clocks = {"cpu": (1,), "gpu": (1,)}, False
        steps = _steps(tables, tuning, clocks)
        space = knob_space(steps, min_batch=tuning.min_batch, max_batch=tuning.max_batch)
        knobs = AgentKnobs(client, pipeline, steps, space, batcher, clocks=clocks)
    tuner = KnobTuner(
        tuning.optimiser,
        knobs,
        meter,
        window=tuning.window_requests,
        warmup=tuning.warmup_requests,
        seed=tuning.seed,
        arrival_change=tuning.arrival_change,
        pipeline=pipeline,
    )
    tuner.on_window = lambda window: _publish(metrics, window, tuner.describe_setting())
    batcher.set_max_wait_ms(tuning.max_wait_ms)
    batcher.on_batch = tuner.on_batch
    await tuner.start()
    metrics.knobs(tuner.describe_setting())
    return ActiveTuning(
        tuner, tuning.optimiser, meter.emulated, clocks, started, time.time(), client
    )


def _steps(tables: ClockSteps, tuning: TuningSpec, clocks: bool) -> ClockSteps:
    if not clocks:  # the top step alone: the clocks are not the tuner's
        return {kind: tables[kind][-1:] for kind in KINDS}
    return {
        "cpu": bounded(tables["cpu"], tuning.cpu, tuning.skip_slowest, "cpu"),
        "gpu": bounded(tables["gpu"], tuning.gpu, tuning.skip_slowest, "gpu"),
    }


def _publish(metrics: Metrics, window: TunerWindow, serving: dict[str, float]) -> None:
    m = window.measurement
    metrics.tuned(
        window.cost,
        m.energy_j_per_request,
        m.latency_s,
        emulated=window.emulated,
        converged=window.converged,
    )
    metrics.knobs(serving)
