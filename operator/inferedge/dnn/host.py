"""What this machine is, read from /proc the same way for every framework backend."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from inferedge.core.profile import DeviceInfo

_KIB = 1024


@dataclass(frozen=True)
class Host:
    """The framework-independent facts of a device profile."""

    cpu_model: str
    cores: int
    jetson_model: str | None
    memory_bytes: int
    platform: str


def describe_host(root: Path = Path("/")) -> Host:
    """CPU model, usable cores, Jetson board, MemTotal and OS; `root` is where /proc lives
    (tests pass a fake tree)."""
    return Host(
        cpu_model=_cpu_model(root),
        cores=_cores(),
        jetson_model=_jetson_model(root),
        memory_bytes=_total_memory(root),
        platform=f"{platform.system()}-{platform.release()}-{platform.machine()}",
    )


def describe_device(
    name: str,
    *,
    framework: Literal["torch", "tensorflow"],
    framework_version: str,
    gpu_name: str | None,
    gpu_memory_bytes: int | None = None,
    energy_sensor: str | None = None,
    emulated_slowdown: float = 1.0,
    memory_bytes: int | None = None,
    root: Path = Path("/"),
) -> DeviceInfo:
    """A device profile's `device`: this host's facts plus what the framework runs on.

    The accelerator is the Jetson board when there is one, else `gpu_name`. The memory is
    `memory_bytes` when given, else `gpu_memory_bytes` (the models run in GPU memory), else the
    host's MemTotal. `root` is where /proc lives (tests pass a fake tree).
    """
    host = describe_host(root)
    if memory_bytes is None:
        memory_bytes = gpu_memory_bytes if gpu_memory_bytes is not None else host.memory_bytes
    return DeviceInfo(
        name=name,
        cpu_model=host.cpu_model,
        cores=host.cores,
        accelerator=host.jetson_model or gpu_name,
        memory_bytes=memory_bytes,
        framework=framework,
        framework_version=framework_version,
        platform=host.platform,
        energy_sensor=energy_sensor,
        emulated_slowdown=emulated_slowdown,
    )


def _cpu_model(root: Path) -> str:
    # x86 names the model; many ARM kernels (Jetson) only name the SoC as "Hardware".
    info = _proc_fields(root / "proc/cpuinfo")
    return (
        info.get("model name")
        or info.get("Hardware")
        or platform.processor()
        or platform.machine()
        or "unknown"
    )


def _cores() -> int:
    # The CPUs this process may run on, which a container or taskset can restrict.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _jetson_model(root: Path) -> str | None:
    try:
        model = (root / "proc/device-tree/model").read_text().strip("\x00 \n")
    except OSError:
        return None
    return model if "jetson" in model.lower() else None


def _total_memory(root: Path) -> int:
    mem_total = _proc_fields(root / "proc/meminfo").get("MemTotal", "")
    if mem_total.endswith(" kB") and mem_total[:-3].strip().isdigit():
        return int(mem_total[:-3]) * _KIB
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _proc_fields(path: Path) -> dict[str, str]:
    """`key : value` lines of a /proc file; the first occurrence of a key wins."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


# cgroup v2, then v1: where a container's memory limit is readable from inside it.
_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


def available_memory(emulated_bytes: int | None = None) -> int:
    """Bytes this host offers: physical memory, its container's limit (a Job's pod) and an
    emulated device's memory, whichever is least."""
    offers = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    for path in _LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            offers.append(int(text))
    if emulated_bytes is not None:
        offers.append(emulated_bytes)
    return min(offers)
