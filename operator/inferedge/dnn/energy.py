"""Real energy sensors read from sysfs, for any framework's profiler.

Three sources are known: the INA3221 power monitor of NVIDIA Jetson boards (the hwmon driver of
JetPack 5+, or the older `ina3221x` iio driver of JetPack 4) and Intel RAPL energy counters. Power
monitors are integrated over time by a background sampling thread; energy counters are read at
start and stop. A machine with none of them (or where they are not readable: RAPL is root-only
on recent kernels) has no sensor, and profiles then carry no energy: it is never estimated.

Every path is taken relative to an injectable root, so tests can build a fake sysfs tree.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SAMPLE_PERIOD_S = 0.005
"""How often power monitors are sampled; INA3221 conversions take a few milliseconds."""


class EnergySensor(ABC):
    """Energy the device draws between `start()` and `stop()`, from a real sensor."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def start(self) -> None:
        """Begin a measurement."""

    @abstractmethod
    def stop(self) -> float:
        """End the measurement; the energy drawn since `start()`, in millijoules."""


@dataclass(frozen=True)
class _Counter:
    """A cumulative energy counter in microjoules that wraps to 0 after `max_uj`."""

    path: Path
    max_uj: int


class CounterSensor(EnergySensor):
    """Sums cumulative energy counters (Intel RAPL packages), allowing for one wrap each.

    A counter wraps after hundreds of kilojoules (many minutes at full load), so a measurement
    shorter than that sees at most one wrap.
    """

    def __init__(self, name: str, counters: Sequence[_Counter]) -> None:
        super().__init__(name)
        self._counters = tuple(counters)
        self._before: tuple[int, ...] = ()

    def start(self) -> None:
        """Remember every counter's value."""
        self._before = tuple(_read_int(c.path) for c in self._counters)

    def stop(self) -> float:
        """Energy since `start()` in millijoules."""
        total_uj = 0
        for counter, before in zip(self._counters, self._before, strict=True):
            now = _read_int(counter.path)
            total_uj += now - before if now >= before else now + counter.max_uj - before
        return total_uj / 1000.0


@dataclass(frozen=True)
class _Rail:
    """A monitored supply rail: files whose values multiply to its power.

    Either one file in milliwatts (iio) or a voltage in millivolts and a current in milliamps
    (hwmon), whose product is in microwatts.
    """

    label: str
    files: tuple[Path, ...]

    def read_mw(self) -> float:
        product = math.prod(_read_int(path) for path in self.files)
        return product / 1000.0 ** (len(self.files) - 1)


class PowerSensor(EnergySensor):
    """Integrates the summed power of some rails over time (trapezoids between samples)."""

    def __init__(
        self, name: str, rails: Sequence[_Rail], period_s: float = SAMPLE_PERIOD_S
    ) -> None:
        super().__init__(name)
        self._rails = tuple(rails)
        self._period_s = period_s
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._energy_mj = 0.0
        self._last = (0.0, 0.0)  # (perf_counter seconds, milliwatts) of the latest sample
        self._error: OSError | ValueError | None = None

    def start(self) -> None:
        """Take a first sample and start sampling in the background."""
        self._energy_mj = 0.0
        self._error = None
        self._done.clear()
        self._last = (time.perf_counter(), self._power_mw())
        self._thread = threading.Thread(target=self._run, name=f"sample {self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> float:
        """Stop sampling, take a last sample, and return the energy in millijoules."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        self._sample()
        return self._energy_mj

    def _run(self) -> None:
        try:
            while not self._done.wait(self._period_s):
                self._sample()
        except (OSError, ValueError) as exc:  # re-raised by stop(), in the caller's thread
            self._error = exc

    def _sample(self) -> None:
        now, power = time.perf_counter(), self._power_mw()
        then, before = self._last
        self._energy_mj += (before + power) / 2.0 * (now - then)  # mW * s = mJ
        self._last = (now, power)

    def _power_mw(self) -> float:
        return sum(rail.read_mw() for rail in self._rails)


def detect_energy_sensor(root: Path = Path("/")) -> EnergySensor | None:
    """The first readable sensor under `root`: Jetson INA3221 (hwmon, then iio), then RAPL.

    Returns None when there is none, or none that this process may read.
    """
    return _ina3221_hwmon(root) or _ina3221_iio(root) or _rapl(root)


def _ina3221_hwmon(root: Path) -> PowerSensor | None:
    rails = []
    for hwmon in sorted(root.glob("sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*")):
        # Only labelled channels are wired on Jetson boards; unlabelled in4..in7 are shunt
        # voltages and sums, which must not be paired with curr4 (a sum of currents).
        for label_file in sorted(hwmon.glob("in*_label")):
            channel = label_file.name.removeprefix("in").removesuffix("_label")
            if _read_text(hwmon / f"in{channel}_enable") == "0":
                continue
            files = (hwmon / f"in{channel}_input", hwmon / f"curr{channel}_input")
            rails.append(_Rail(_read_text(label_file) or f"in{channel}", files))
    return _power_sensor("ina3221", rails)


def _ina3221_iio(root: Path) -> PowerSensor | None:
    rails = []
    for device in sorted(root.glob("sys/bus/i2c/drivers/ina3221x/*/iio:device*")):
        for name_file in sorted(device.glob("rail_name_*")):
            channel = name_file.name.removeprefix("rail_name_")
            files = (device / f"in_power{channel}_input",)
            rails.append(_Rail(_read_text(name_file) or f"rail{channel}", files))
    return _power_sensor("ina3221x", rails)


def _power_sensor(driver: str, rails: list[_Rail]) -> PowerSensor | None:
    """A sensor on the readable rails: the board's total input when one is labelled as such,
    else the sum of all rails (which then misses what no rail monitors)."""
    readable = [rail for rail in rails if rail.label.upper() != "NC" and _readable(rail)]
    total = [rail for rail in readable if rail.label.upper().endswith("_IN")]
    chosen = total[:1] or readable
    if not chosen:
        return None
    return PowerSensor(f"{driver}:{'+'.join(rail.label for rail in chosen)}", chosen)


def _readable(rail: _Rail) -> bool:
    try:
        rail.read_mw()
    except (OSError, ValueError):
        return False
    return True


def _rapl(root: Path) -> CounterSensor | None:
    counters = []
    labels = []
    for domain in sorted(root.glob("sys/class/powercap/intel-rapl:*")):
        # Top-level domains only: intel-rapl:0:0 (cores), :0:1, :0:2 (DRAM) lie inside package 0.
        if domain.name.count(":") != 1:
            continue
        # Packages only: psys covers the whole platform, packages included, so adding it would
        # count them twice.
        label = _read_text(domain / "name")
        if label is None or not label.startswith("package"):
            continue
        try:
            _read_int(domain / "energy_uj")
            max_uj = _read_int(domain / "max_energy_range_uj")
        except (OSError, ValueError):  # root-only since the PLATYPUS mitigation
            continue
        counters.append(_Counter(domain / "energy_uj", max_uj))
        labels.append(label)
    if not counters:
        return None
    return CounterSensor(f"intel-rapl:{'+'.join(labels)}", counters)


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
