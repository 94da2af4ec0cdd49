"""Describe the machine a Keras profile is measured on.

The same facts the torch backend records (CPU model, usable cores, Jetson board, memory, OS),
read the same way from /proc, plus TensorFlow's version and GPU, if it sees one.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import tensorflow as tf

from inferedge.core.profile import DeviceInfo

_KIB = 1024


def describe_device(
    name: str,
    *,
    energy_sensor: str | None = None,
    emulated_slowdown: float = 1.0,
    memory_bytes: int | None = None,
    root: Path = Path("/"),
) -> DeviceInfo:
    """What this machine is, as TensorFlow will run on it.

    `memory_bytes` overrides the machine's MemTotal. `root` is where /proc is looked up.
    """
    return DeviceInfo(
        name=name,
        cpu_model=_cpu_model(root),
        cores=_cores(),
        accelerator=_jetson_model(root) or _gpu_name(),
        memory_bytes=memory_bytes if memory_bytes is not None else _total_memory(root),
        framework="tensorflow",
        framework_version=str(tf.__version__),
        platform=f"{platform.system()}-{platform.release()}-{platform.machine()}",
        energy_sensor=energy_sensor,
        emulated_slowdown=emulated_slowdown,
    )


def has_gpu() -> bool:
    """Whether TensorFlow places work on a GPU."""
    return bool(tf.config.list_physical_devices("GPU"))


def _gpu_name() -> str | None:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return str(details.get("device_name", "GPU"))


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
