"""What the knob tuner acts on and reads: an emulated device, or a node's agent and sensor.

`EmulatedKnobs` and `EmulatedEnergy` stand in for clocks and power rails where there are none
(`inferedge run`, CI): lowering an emulated clock stretches the edge's real compute by the
emulated device's service-time ratio (through the compute slowdown the emulation already uses),
and energy is the device's modelled busy power over the batches' compute time. Every figure
they give is labelled emulated. `AgentKnobs` moves real clocks through the node's privileged
agent, and `SensorEnergy` reads a real INA3221 or RAPL sensor over the whole window.
"""

from __future__ import annotations

from inferedge.core.clock_wishes import KINDS, ClockKind
from inferedge.core.emulated_device import ClockTable, EmulatedDevice
from inferedge.core.knobs import SearchSpace, Setting
from inferedge.dnn.energy import EnergySensor
from inferedge.runtime.clock_client import ClockAgentClient
from inferedge.runtime.edge_batching import BatchRecord, EdgeBatcher

ClockSteps = dict[ClockKind, tuple[int, ...]]
"""Per clock, the frequencies (kHz, ascending) the tuner may choose; one when it may not."""


def knob_space(steps: ClockSteps, *, min_batch: int, max_batch: int) -> SearchSpace:
    """The space whose clock steps index `steps` (already bounded) and whose batches run from
    `min_batch` to `max_batch`."""
    return SearchSpace(
        cpu_steps=len(steps["cpu"]),
        gpu_steps=len(steps["gpu"]),
        max_batch=max_batch,
        min_batch=min_batch,
    )


def device_khz(table: ClockTable) -> tuple[int, ...]:
    """An emulated clock table in kHz."""
    return tuple(round(mhz * 1000) for mhz in table.mhz)


class EmulatedKnobs:
    """The knobs of an emulated device: the batcher's batch size, and clocks that stretch the
    edge's compute by the device's service-time ratio to the top clocks."""

    def __init__(
        self,
        device: EmulatedDevice,
        steps: ClockSteps,
        space: SearchSpace,
        batcher: EdgeBatcher,
    ) -> None:
        self._device, self._steps, self._space = device, steps, space
        self._batcher = batcher
        self._dataplane = batcher.dataplane
        self._base_slowdown = self._dataplane.compute_slowdown
        tables = {"cpu": device_khz(device.cpu), "gpu": device_khz(device.gpu)}
        self._index = {kind: {khz: i for i, khz in enumerate(tables[kind])} for kind in KINDS}
        self._top = (len(device.cpu) - 1, len(device.gpu) - 1)
        self._clocks = self._top

    @property
    def space(self) -> SearchSpace:
        """The space over the allowed steps."""
        return self._space

    @property
    def clocks(self) -> tuple[int, int]:
        """The device's CPU and GPU steps now."""
        return self._clocks

    async def apply(self, setting: Setting) -> None:
        """Set the batch size and the emulated clocks, which stretch the compute from the
        next batch on."""
        cpu = self._index["cpu"][self._steps["cpu"][setting.cpu_step]]
        gpu = self._index["gpu"][self._steps["gpu"][setting.gpu_step]]
        self._clocks = (cpu, gpu)
        at, top = Setting(cpu, gpu, setting.batch), Setting(*self._top, setting.batch)
        stretch = self._device.service_s(at) / self._device.service_s(top)
        self._dataplane.compute_slowdown = self._base_slowdown * stretch
        self._batcher.set_batch_size(setting.batch)

    def describe(self, setting: Setting) -> dict[str, float]:
        """The setting in kHz and samples."""
        return _describe(self._steps, setting)


class EmulatedEnergy:
    """Busy energy of an emulated device: its modelled power over each batch's compute time,
    with the memory clock following the busy fraction as the device's governor would."""

    emulated = True

    def __init__(self, device: EmulatedDevice, knobs: EmulatedKnobs) -> None:
        self._device, self._knobs = device, knobs
        self._joules = 0.0
        self._previous: BatchRecord | None = None

    def begin(self) -> None:
        """Start counting from zero."""
        self._joules = 0.0

    def batch(self, record: BatchRecord, setting: Setting) -> None:
        """Add one batch's modelled energy, at the clocks the knobs hold now."""
        busy = 1.0
        if self._previous is not None and record.started > self._previous.started:
            busy = min(1.0, record.compute_s / (record.started - self._previous.started))
        self._previous = record
        clocks = Setting(*self._knobs.clocks, setting.batch)
        level = self._device.memory_level(busy)
        self._joules += (
            self._device.power_w(clocks, busy=True, memory_level=level) * record.compute_s
        )

    def end(self) -> float:
        """The joules counted since `begin`."""
        return self._joules


class SensorEnergy:
    """A real sensor's energy over the whole window (idle included: the rails cannot tell)."""

    emulated = False

    def __init__(self, sensor: EnergySensor) -> None:
        self._sensor = sensor

    def begin(self) -> None:
        """Start the sensor's measurement."""
        self._sensor.start()

    def batch(self, record: BatchRecord, setting: Setting) -> None:
        """Nothing: the sensor integrates on its own."""

    def end(self) -> float:
        """The sensor's joules since `begin`."""
        return self._sensor.stop() / 1000.0


class AgentKnobs:
    """Real knobs: the batch size here, the clocks through the node's clock agent (or, with
    `clocks=False`, left to the node's governors: the agent, if any, is told to forget this
    pipeline's wish)."""

    def __init__(
        self,
        client: ClockAgentClient | None,
        pipeline: str,
        steps: ClockSteps,
        space: SearchSpace,
        batcher: EdgeBatcher,
        *,
        clocks: bool,
    ) -> None:
        self._client, self._pipeline = client, pipeline
        self._steps, self._space, self._batcher = steps, space, batcher
        self._clocks = clocks

    @property
    def space(self) -> SearchSpace:
        """The space over the agent's steps."""
        return self._space

    async def apply(self, setting: Setting) -> None:
        """Set the batch size, then ask the agent for the clocks (or release them)."""
        self._batcher.set_batch_size(setting.batch)
        if self._client is None:
            return
        if not self._clocks:
            await self._client.release(self._pipeline)
            return
        await self._client.request(
            self._pipeline,
            cpu_khz=self._steps["cpu"][setting.cpu_step],
            gpu_khz=self._steps["gpu"][setting.gpu_step],
        )

    def describe(self, setting: Setting) -> dict[str, float]:
        """The setting in kHz and samples."""
        return _describe(self._steps, setting)


def _describe(steps: ClockSteps, setting: Setting) -> dict[str, float]:
    return {
        "cpu_khz": float(steps["cpu"][setting.cpu_step]),
        "gpu_khz": float(steps["gpu"][setting.gpu_step]),
        "batch": float(setting.batch),
    }
