"""Describe the machine a Keras profile is measured on.

The host facts come from `inferedge.dnn.host`, as for torch; this adds TensorFlow's version and
GPU, if it sees one.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from inferedge.core.profile import DeviceInfo
from inferedge.dnn import host


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
    return host.describe_device(
        name,
        framework="tensorflow",
        framework_version=str(tf.__version__),
        gpu_name=_gpu_name(),
        energy_sensor=energy_sensor,
        emulated_slowdown=emulated_slowdown,
        memory_bytes=memory_bytes,
        root=root,
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
