"""Describe the machine a torch profile is measured on."""

from __future__ import annotations

from pathlib import Path

import torch

from inferedge.core.profile import DeviceInfo
from inferedge.dnn import host


def describe_device(
    name: str,
    device: torch.device,
    *,
    energy_sensor: str | None = None,
    emulated_slowdown: float = 1.0,
    memory_bytes: int | None = None,
    root: Path = Path("/"),
) -> DeviceInfo:
    """What `device` is: CPU, cores, accelerator, memory, torch and OS versions.

    `memory_bytes` overrides the detected memory (the device's total GPU memory when `device` is
    CUDA, else the machine's MemTotal). `root` is where /proc is looked up (tests pass a fake).
    """
    on_cuda = device.type == "cuda"
    return host.describe_device(
        name,
        framework="torch",
        framework_version=torch.__version__,
        gpu_name=torch.cuda.get_device_name(device) if on_cuda else None,
        gpu_memory_bytes=torch.cuda.get_device_properties(device).total_memory if on_cuda else None,
        energy_sensor=energy_sensor,
        emulated_slowdown=emulated_slowdown,
        memory_bytes=memory_bytes,
        root=root,
    )
