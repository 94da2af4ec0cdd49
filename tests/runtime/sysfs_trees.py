"""Fake sysfs trees laid out as on NVIDIA Jetson boards, for the clock and energy driver tests.

`nano(root)`, `xavier_nx(root)` and `orin(root)` build, under a temporary root, the files the
drivers read on those boards: the cpufreq policies with their `related_cpus` groupings and
frequency tables, the GPU's devfreq directory (with its /sys/class/devfreq link, as on the board)
and the INA3221 power monitor (with its /sys/bus/i2c/drivers link). The smaller builders
(`cpufreq_policy`, `devfreq_gpu`, `ina3221_hwmon`, `ina3221x_iio`) build other layouts.

Where each table or path comes from is said next to it. Power readings are illustrative, not
measured, and limits default to each table's ends (a board's power mode may cap them lower).

`watch_writes(root)` observes the clock files while code runs: every file opened for writing
below the root, in order, with every domain's (min, max) after each write. It uses a Python
audit hook, so the code under test runs unchanged on real files.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CPU = "sys/devices/system/cpu"
CPUFREQ = f"{CPU}/cpufreq"

# Jetson Nano (JetPack 4): the EcoEdgeInfer authors' nvpmodel tool, Trouvaille1/EcoEdgeInfer
# nvpmplus.py ("TX1/Nano" tables); the GPU table also in a Nano benchmark's README (both list
# the same 12 steps).
NANO_CPU_KHZ = (
    *(102000, 204000, 307200, 403200, 518400, 614400, 710400, 825600),
    *(921600, 1036800, 1132800, 1224000, 1326000, 1428000, 1479000),
)
NANO_GPU_HZ = tuple(76_800_000 * step for step in range(1, 13))  # 76.8 to 921.6 MHz

# Jetson Xavier NX: the same nvpmplus.py ("Xavier" tables, 25 CPU and 15 GPU steps), which are
# also the tables the EcoEdgeInfer paper tunes over.
XAVIER_NX_CPU_KHZ = (*(115200 + 76800 * step for step in range(24)), 1907200)
XAVIER_NX_GPU_HZ = (
    *(114750000, 204000000, 306000000, 408000000, 510000000, 599250000, 701250000),
    *(752250000, 803250000, 854250000, 905250000, 956250000, 1007250000, 1058250000),
    1109250000,
)

# Jetson Orin NX 16GB (JetPack 5): both tables from an Orin NX GPU/DLA benchmark script that
# lists its board's available frequencies and drives /sys/devices/gpu.0/devfreq/17000000.ga10b
# and the cpu4 cluster; 26 CPU steps 115.2-1984 MHz, 7 GPU steps 306-918 MHz.
ORIN_NX_CPU_KHZ = (*(115200 + 76800 * step for step in range(25)), 1984000)
ORIN_NX_GPU_HZ = tuple(306_000_000 + 102_000_000 * step for step in range(7))

# From Linux drivers/cpufreq/tegra194-cpufreq.c: one policy per cluster, of 2 cores on Tegra194
# (Xavier: 3 Carmel clusters on the NX) and of 4 on Tegra234 (Orin). The Nano's Tegra X1 clocks
# its 4 A57 cores together; that its cpufreq has one policy is our reading of that (nvpmplus.py
# writes cpu0 alone), not a listing seen from a board.
NANO_POLICIES = {"policy0": (0, 1, 2, 3)}
XAVIER_NX_POLICIES = {"policy0": (0, 1), "policy2": (2, 3), "policy4": (4, 5)}
ORIN_NX_POLICIES = {"policy0": (0, 1, 2, 3), "policy4": (4, 5, 6, 7)}

# Both lists from nvpmplus.py (the governors it offers); schedutil and nvhost_podgov are its
# defaults.
CPU_GOVERNORS = "interactive conservative ondemand userspace powersave performance schedutil"
GPU_GOVERNORS = "wmark_simple nvhost_podgov userspace performance simple_ondemand"

SHUNT_MICRO_OHMS = 5000
"""Xavier NX and Orin NX device trees (tegra194-p3668.dtsi, tegra234-p3767.dtsi)."""


@dataclass(frozen=True)
class Rail:
    """One INA3221 channel: its label and an (illustrative) reading."""

    label: str
    mv: int
    ma: int


@dataclass(frozen=True)
class Board:
    """What a board builder made, for tests to check discovery against."""

    name: str
    policies: Mapping[str, tuple[int, ...]]  # cpufreq policy -> its related cpus
    cpu_khz: tuple[int, ...]
    gpu: str  # the devfreq device's name
    gpu_dir: Path  # its own directory, which /sys/class/devfreq/<gpu> links to
    gpu_khz: tuple[int, ...]
    total_rail: str  # the label of the module's input rail


def nano(root: Path, *, i2c_client: str = "7000c400.i2c/i2c-6/6-0040") -> Board:
    """Jetson Nano (4GB) on JetPack 4: one policy for 4 A57 cores, GPU 57000000.gpu, and the
    `ina3221x` iio driver with POM_5V_IN on channel 0.

    The driver link sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0 is the path
    Pablouc/jetson-gpu-benchmarking reads; the rail names are energymon's JetsonPowerRails.md
    ("porg"). The directory behind the link (Tegra X1's i2c@7000c400 as i2c-6) we did not find
    written down; nothing reads it but the link.
    """
    for name, cpus in NANO_POLICIES.items():
        cpufreq_policy(root, int(name.removeprefix("policy")), cpus, NANO_CPU_KHZ)
    # /sys/devices/gpu.0/devfreq/57000000.gpu: nvpmplus.py's gpu_loc for the Nano.
    gpu_dir = devfreq_gpu(root, "gpu.0", "57000000.gpu", NANO_GPU_HZ)
    rails = [
        Rail("POM_5V_IN", 5000, 800),
        Rail("POM_5V_GPU", 5000, 120),
        Rail("POM_5V_CPU", 5000, 200),
    ]
    ina3221x_iio(root, i2c_client, rails)
    return Board(
        "nano", NANO_POLICIES, NANO_CPU_KHZ, "57000000.gpu", gpu_dir, _khz(NANO_GPU_HZ), "POM_5V_IN"
    )


def xavier_nx(
    root: Path, *, hwmon: int = 6, i2c_client: str = "platform/c250000.i2c/i2c-7/7-0040"
) -> Board:
    """Jetson Xavier NX on JetPack 5: 6 Carmel cores in 3 clusters, GPU 17000000.gv11b, and the
    `ina3221` hwmon driver with VDD_IN on channel 1.

    The hwmon link sys/bus/i2c/drivers/ina3221/7-0040/hwmon/hwmon6, its labels (VDD_IN,
    VDD_CPU_GPU_CV, VDD_SOC, and in7 "sum of shunt voltages") are alumet's Jetson plugin README,
    read on a Xavier NX devkit; the labels match tegra194-p3668.dtsi. i2c@c250000 is i2c-7 as on
    JetPack 4 (scripts write /sys/devices/c250000.i2c/i2c-7/7-0040/iio:device0 there); its place
    under platform/ on JetPack 5 is our assumption, by analogy with Orin's.
    """
    for name, cpus in XAVIER_NX_POLICIES.items():
        cpufreq_policy(root, int(name.removeprefix("policy")), cpus, XAVIER_NX_CPU_KHZ)
    # /sys/devices/gpu.0/devfreq/17000000.gv11b: nvpmplus.py's gpu_loc for Xavier (an AGX
    # Xavier script, pulp-platform/voltmeter, uses /sys/devices/17000000.gv11b/devfreq/...).
    gpu_dir = devfreq_gpu(root, "gpu.0", "17000000.gv11b", XAVIER_NX_GPU_HZ)
    rails = [
        Rail("VDD_IN", 5000, 1200),
        Rail("VDD_CPU_GPU_CV", 5000, 400),
        Rail("VDD_SOC", 5000, 300),
    ]
    ina3221_hwmon(root, i2c_client, hwmon, rails)
    return Board(
        "xavier_nx",
        XAVIER_NX_POLICIES,
        XAVIER_NX_CPU_KHZ,
        "17000000.gv11b",
        gpu_dir,
        _khz(XAVIER_NX_GPU_HZ),
        "VDD_IN",
    )


def orin(
    root: Path, *, hwmon: int = 4, i2c_client: str = "platform/c240000.i2c/i2c-1/1-0040"
) -> Board:
    """Jetson Orin NX 16GB on JetPack 5: 8 A78AE cores in 2 clusters, GPU 17000000.ga10b, and the
    `ina3221` hwmon driver with VDD_IN on channel 1.

    The GPU directory /sys/devices/17000000.ga10b/devfreq/17000000.ga10b is the one NVIDIA's
    nvpmodel template for Orin names (MLPerf inference code; the Orin NX script above goes
    through /sys/devices/gpu.0/devfreq/17000000.ga10b). Orin scripts read the INA3221 at
    /sys/devices/platform/c240000.i2c/i2c-1/1-0040/hwmon/hwmon4 (JetPack 5; JetPack 6 adds
    bus@0/); the labels VDD_IN, VDD_CPU_GPU_CV, VDD_SOC are tegra234-p3767.dtsi's, and an Orin
    log lists in7 "sum of shunt voltages" beside them.
    """
    for name, cpus in ORIN_NX_POLICIES.items():
        cpufreq_policy(root, int(name.removeprefix("policy")), cpus, ORIN_NX_CPU_KHZ)
    gpu_dir = devfreq_gpu(root, "17000000.ga10b", "17000000.ga10b", ORIN_NX_GPU_HZ)
    rails = [
        Rail("VDD_IN", 5000, 1500),
        Rail("VDD_CPU_GPU_CV", 5000, 500),
        Rail("VDD_SOC", 5000, 400),
    ]
    ina3221_hwmon(root, i2c_client, hwmon, rails)
    return Board(
        "orin",
        ORIN_NX_POLICIES,
        ORIN_NX_CPU_KHZ,
        "17000000.ga10b",
        gpu_dir,
        _khz(ORIN_NX_GPU_HZ),
        "VDD_IN",
    )


BOARDS = {"nano": nano, "xavier_nx": xavier_nx, "orin": orin}


def cpufreq_policy(
    root: Path,
    index: int,
    cpus: Sequence[int],
    table_khz: Sequence[int],
    *,
    min_khz: int | None = None,
    max_khz: int | None = None,
) -> Path:
    """A cpufreq policy directory, and the cpuN/cpufreq links of its cpus to it (as the kernel
    lays them out); limits default to the table's ends."""
    policy = root / CPUFREQ / f"policy{index}"
    cpu_list = " ".join(str(cpu) for cpu in cpus)
    low = table_khz[0] if min_khz is None else min_khz
    high = table_khz[-1] if max_khz is None else max_khz
    write_files(
        policy,
        {
            "affected_cpus": cpu_list,
            "related_cpus": cpu_list,
            "cpuinfo_min_freq": table_khz[0],
            "cpuinfo_max_freq": table_khz[-1],
            # The kernel ends this list with a space.
            "scaling_available_frequencies": "".join(f"{f} " for f in table_khz),
            "scaling_available_governors": CPU_GOVERNORS,
            "scaling_governor": "schedutil",
            "scaling_min_freq": low,
            "scaling_max_freq": high,
            "scaling_cur_freq": high,
        },
    )
    for cpu in cpus:
        link(root / CPU / f"cpu{cpu}" / "cpufreq", policy)
    return policy


def devfreq_gpu(
    root: Path,
    device: str,
    name: str,
    table_hz: Sequence[int],
    *,
    min_hz: int | None = None,
    max_hz: int | None = None,
) -> Path:
    """A devfreq directory sys/devices/<device>/devfreq/<name> (frequencies in Hz), linked from
    sys/class/devfreq/<name>; limits default to the table's ends."""
    directory = root / "sys/devices" / device / "devfreq" / name
    low = table_hz[0] if min_hz is None else min_hz
    high = table_hz[-1] if max_hz is None else max_hz
    write_files(
        directory,
        {
            "available_frequencies": " ".join(str(f) for f in table_hz),
            "available_governors": GPU_GOVERNORS,
            "governor": "nvhost_podgov",
            "min_freq": low,
            "max_freq": high,
            "cur_freq": high,
        },
    )
    link(root / "sys/class/devfreq" / name, directory)
    return directory


def ina3221_hwmon(
    root: Path, i2c_client: str, hwmon: int, rails: Sequence[Rail], *, sum_label: bool = True
) -> Path:
    """The hwmon directory of an INA3221 (JetPack 5+): labelled channels 1-3 in mV and mA, the
    shunt voltages in4-6 (uV) and, when summing, in7 and curr4; linked from the driver and from
    /sys/class/hwmon, as the kernel does."""
    client = root / "sys/devices" / i2c_client
    directory = client / "hwmon" / f"hwmon{hwmon}"
    files: dict[str, object] = {"name": "ina3221"}
    for channel, rail in enumerate(rails, start=1):
        files |= {
            f"in{channel}_label": rail.label,
            f"in{channel}_enable": 1,
            f"in{channel}_input": rail.mv,
            f"curr{channel}_input": rail.ma,
            f"shunt{channel}_resistor": SHUNT_MICRO_OHMS,
            f"in{channel + 3}_input": rail.ma * SHUNT_MICRO_OHMS // 1000,
        }
    if sum_label:
        files |= {
            "in7_label": "sum of shunt voltages",
            "in7_input": sum(rail.ma * SHUNT_MICRO_OHMS // 1000 for rail in rails),
            "curr4_input": sum(rail.ma for rail in rails),
        }
    write_files(directory, files)
    link(root / "sys/bus/i2c/drivers/ina3221" / client.name, client)
    link(root / "sys/class/hwmon" / directory.name, directory)
    return directory


def ina3221x_iio(root: Path, i2c_client: str, rails: Sequence[Rail]) -> Path:
    """The iio device of an INA3221 under JetPack 4's `ina3221x` driver: channels from 0, power
    in mW next to voltage and current; linked from the driver."""
    client = root / "sys/devices" / i2c_client
    directory = client / "iio:device0"
    files: dict[str, object] = {}
    for channel, rail in enumerate(rails):
        files |= {
            f"rail_name_{channel}": rail.label,
            f"in_voltage{channel}_input": rail.mv,
            f"in_current{channel}_input": rail.ma,
            f"in_power{channel}_input": rail.mv * rail.ma // 1000,
        }
    write_files(directory, files)
    link(root / "sys/bus/i2c/drivers/ina3221x" / client.name, client)
    return directory


def write_files(directory: Path, files: Mapping[str, object]) -> None:
    """Write each value as a sysfs file does: its text and a newline."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        (directory / name).write_text(f"{value}\n")


def link(path: Path, target: Path) -> None:
    """A relative symlink, so the tree stays valid wherever it lies (and is copied)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(os.path.relpath(target, path.parent))


def limits(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every clock domain's (min, max) in kHz, by name; None where they cannot be read."""
    found: dict[str, tuple[int, int] | None] = {}
    domains = [(p, "scaling_min_freq", "scaling_max_freq", 1) for p in root.glob(f"{CPUFREQ}/*")]
    domains += [(p, "min_freq", "max_freq", 1000) for p in root.glob("sys/class/devfreq/*")]
    for path, low, high, per_khz in sorted(domains):
        try:
            found[path.name] = (
                int((path / low).read_text()) // per_khz,
                int((path / high).read_text()) // per_khz,
            )
        except (OSError, ValueError):
            found[path.name] = None
    return found


@dataclass
class WriteLog:
    """The files opened for writing below `root`, in order, and the domains' limits around them."""

    root: Path
    paths: list[Path] = field(default_factory=list)
    # snapshots[i] is every domain's limits just before write i; the last one is taken on exit.
    snapshots: list[dict[str, tuple[int, int] | None]] = field(default_factory=list)

    @property
    def after_each_write(self) -> list[dict[str, tuple[int, int] | None]]:
        """Every domain's limits after each write (a refused one leaves them as they were)."""
        return self.snapshots[1:]

    def _opened(self, args: tuple[Any, ...]) -> None:
        target, _mode, flags = args
        if isinstance(target, int) or not flags & (os.O_WRONLY | os.O_RDWR):
            return
        path = Path(os.fsdecode(target))
        if path.is_relative_to(self.root):
            self.snapshots.append(limits(self.root))
            self.paths.append(path)


_watching: list[WriteLog] = []


@contextmanager
def watch_writes(root: Path) -> Iterator[WriteLog]:
    """Record what the code run inside writes below `root` (see `WriteLog`)."""
    _install_audit_hook()
    log = WriteLog(root)
    _watching.append(log)
    try:
        yield log
    finally:
        _watching.remove(log)
        log.snapshots.append(limits(root))


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # `limits` opens files itself: taking the log off the list while it reads avoids recursion.
    if event == "open" and _watching:
        log = _watching.pop()
        try:
            log._opened(args)
        finally:
            _watching.append(log)


@functools.cache
def _install_audit_hook() -> None:
    """Audit hooks cannot be removed: one is installed per process and idles when unwatched."""
    sys.addaudithook(_audit)


def _khz(table_hz: Sequence[int]) -> tuple[int, ...]:
    return tuple(hz // 1000 for hz in table_hz)
