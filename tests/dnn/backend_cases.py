"""Cases every backend's tests run: exit heads to render, training settings to refuse."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from inferedge.core.exits import Layer

LAYERS = TypeAdapter(tuple[Layer, ...])

# Every layer type and every optional argument that changes the rendering, in every framework.
HEADS: dict[str, tuple[tuple[int, ...], list[dict[str, object]]]] = {
    "conv-stack": (
        (8, 12, 12),
        [
            {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "stride": 2, "padding": 1},
            {"type": "batchnorm"},
            {"type": "relu"},
            {"type": "conv2d", "out_channels": 4, "kernel_size": 1, "bias": False},
            {"type": "maxpool", "kernel_size": 3, "stride": 1, "padding": 1},
            {"type": "avgpool", "kernel_size": 2},
            {"type": "adaptive_pool", "mode": "max", "output_size": 2},
            {"type": "flatten"},
            {"type": "linear", "out_features": 32, "bias": False},
            {"type": "batchnorm"},
            {"type": "relu"},
            {"type": "dropout", "p": 0.25},
            {"type": "linear"},
        ],
    ),
    "ceil-pools": (
        (6, 9, 9),
        [
            {"type": "maxpool", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
            {"type": "avgpool", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
            {"type": "avgpool", "kernel_size": 2, "ceil_mode": True},
            {"type": "flatten"},
            {"type": "linear"},
        ],
    ),
    "sdn": (
        (8, 9, 9),
        [
            {"type": "adaptive_pool", "mode": "mixed", "output_size": 4},
            {"type": "flatten"},
            {"type": "linear"},
        ],
    ),
    "uneven-bins": (
        (5, 7, 7),
        [
            {"type": "adaptive_pool", "mode": "mixed", "output_size": 3},
            {"type": "adaptive_pool", "mode": "avg", "output_size": 2},
            {"type": "flatten"},
            {"type": "linear"},
        ],
    ),
    "vector": ((20,), [{"type": "batchnorm"}, {"type": "linear"}]),
}


def head_layers(name: str) -> tuple[tuple[int, ...], tuple[Layer, ...]]:
    """The input shape (C x H x W) and the validated layers of head `name` of `HEADS`."""
    shape, raw = HEADS[name]
    return shape, LAYERS.validate_python(raw)


# Training settings out of range, and the message naming each.
BAD_SCHEDULES: list[tuple[dict[str, Any], str]] = [
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"patience": 0}, "patience must be >= 1"),
]
