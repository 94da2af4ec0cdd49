"""Memory estimates made before any model is built, so a shape that cannot fit is refused in
one line instead of crashing a step tens of seconds later.

The estimates are deliberately coarse upper bounds of the right order, not predictions:
- a network's live activations are bounded by `ACTIVATION_FACTOR` times its input per
  sample, which covers the zoo's CNNs (a ResNet stem holds 64 channels at half resolution:
  about 5x a 3-channel input) with room for the float32 copies a step keeps; finding the cut
  points also records every activation of one sample once, bounded by `RECORD_FACTOR` times
  the input;
- an exit head's training needs its parameters four times (weights, gradients, two Adam
  moments) and every layer's output twice (kept for the backward pass, and its gradient).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from inferedge.core.exits import Layer, check_head, head_parameters

FLOAT_BYTES: Final = 4
ACTIVATION_FACTOR: Final = 16
RECORD_FACTOR: Final = 64
_GIB: Final = 2**30


def _count(shape: Sequence[int]) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


def input_estimate(input_shape: Sequence[int], batch: int) -> int:
    """Bytes a network needs at most to be cut and run on `batch` inputs of `input_shape`."""
    return _count(input_shape) * FLOAT_BYTES * (RECORD_FACTOR + batch * ACTIVATION_FACTOR)


def head_estimate(
    layers: tuple[Layer, ...], in_shape: tuple[int, ...], num_classes: int, batch: int, where: str
) -> int:
    """Bytes training one exit head of `layers` needs at `batch` samples; `ExitSpecError`
    (naming `where`) when the layers do not fit the shape at all."""
    shapes = check_head(layers, in_shape, num_classes, where)
    activations = sum(_count(shape) for shape in shapes) * batch
    return (4 * head_parameters(layers, shapes) + 2 * activations) * FLOAT_BYTES


def shortfall(need: int, available: int, what: str) -> str | None:
    """The one-line refusal when `need` bytes do not fit in `available`, else None."""
    if need <= available:
        return None
    return (
        f"{what} needs about {need / _GIB:.1f} GiB, more than the {available / _GIB:.1f} GiB "
        "this device offers"
    )
