"""What this machine is, read from /proc the same way for every framework backend."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

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
