"""Exit heads as a declarative spec: a list of layers, validated, shape-checked, never code.

The spec arrives inside a custom resource, so it can only name layer types from a fixed set with
bounded arguments; `inferedge.dnn` renders it into framework modules. Shapes are checked here,
purely, when the plan is made: every head must turn its exit point's activation into
`num_classes` logits.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inferedge.core.errors import InferedgeError

Preset = Literal["replicate-classifier", "sdn", "minimal"]
Shape = tuple[int, ...]
Size = Annotated[int, Field(ge=1, le=64)]


class ExitSpecError(InferedgeError):
    """An exit head does not fit its exit point, or its spec is malformed."""


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Conv2d(_Layer):
    """2-D convolution; input channels are inferred from the exit point."""

    type: Literal["conv2d"] = "conv2d"
    out_channels: int = Field(ge=1, le=8192)
    kernel_size: Size = 3
    stride: Size = 1
    padding: int = Field(default=0, ge=0, le=32)
    bias: bool = True


class BatchNorm(_Layer):
    """Batch normalisation over channels (2-D maps) or features (vectors)."""

    type: Literal["batchnorm"] = "batchnorm"


class ReLU(_Layer):
    """Rectified linear unit."""

    type: Literal["relu"] = "relu"


class _WindowPool(_Layer):
    """Pooling with a fixed window; the stride defaults to the window."""

    kernel_size: Size = 2
    stride: Size | None = Field(default=None, description="Defaults to kernel_size.")
    padding: int = Field(default=0, ge=0, le=32)
    ceil_mode: bool = Field(default=False, description="Round the output size up, not down.")


class MaxPool(_WindowPool):
    """Max pooling with a fixed window."""

    type: Literal["maxpool"] = "maxpool"


class AvgPool(_WindowPool):
    """Average pooling with a fixed window."""

    type: Literal["avgpool"] = "avgpool"


class AdaptivePool(_Layer):
    """Pooling to a fixed output size: `avg`, `max`, or SDN's `mixed` (a learned blend of both)."""

    type: Literal["adaptive_pool"] = "adaptive_pool"
    mode: Literal["avg", "max", "mixed"] = "avg"
    output_size: Size = 1


class Flatten(_Layer):
    """Flatten everything but the batch dimension."""

    type: Literal["flatten"] = "flatten"


class Linear(_Layer):
    """Fully connected layer; input features are inferred. The last one must give num_classes."""

    type: Literal["linear"] = "linear"
    out_features: int | Literal["num_classes"] = Field(default="num_classes")
    bias: bool = True

    @model_validator(mode="after")
    def _bounded(self) -> Linear:
        if isinstance(self.out_features, int) and not 1 <= self.out_features <= 65536:
            raise ValueError("out_features must be in 1..65536 or 'num_classes'")
        return self


class Dropout(_Layer):
    """Dropout (active only while training)."""

    type: Literal["dropout"] = "dropout"
    p: float = Field(default=0.5, ge=0.0, lt=1.0)


Layer = Annotated[
    Conv2d | BatchNorm | ReLU | MaxPool | AvgPool | AdaptivePool | Flatten | Linear | Dropout,
    Field(discriminator="type"),
]


class ExitHeadSpec(BaseModel):
    """One exit head: a preset, or an explicit list of layers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Preset | None = Field(default=None, description="A built-in head shape.")
    layers: tuple[Layer, ...] | None = Field(
        default=None, min_length=1, max_length=32, description="Explicit layers, in order."
    )

    @model_validator(mode="after")
    def _one_of(self) -> ExitHeadSpec:
        if (self.preset is None) == (self.layers is None):
            raise ValueError("give exactly one of 'preset' or 'layers'")
        return self


# SDN (Kaya et al. 2019) pools feature maps larger than 4x4 down to 4x4 with a learned
# max/avg blend before its linear classifier.
SDN_POOL_SIZE = 4


def preset_layers(
    preset: Preset, in_shape: Shape, classifier: tuple[Layer, ...]
) -> tuple[Layer, ...]:
    """The layers of a preset head for an exit whose activation has shape `in_shape`.

    `classifier` is the backbone's own classifier, as layers, for `replicate-classifier`.
    """
    if preset == "minimal":
        pool: tuple[Layer, ...] = (
            (AdaptivePool(mode="avg", output_size=1),) if len(in_shape) == 3 else ()
        )
        return (*pool, Flatten(), Linear())
    if preset == "sdn":
        if len(in_shape) != 3:
            return (Flatten(), Linear())
        size = min(SDN_POOL_SIZE, in_shape[1], in_shape[2])
        return (AdaptivePool(mode="mixed", output_size=size), Flatten(), Linear())
    if not classifier:
        raise ExitSpecError(
            "preset replicate-classifier: the backbone's classifier could not be expressed as "
            "exit layers; use preset 'sdn' or 'minimal', or list the layers"
        )
    return classifier


def _describe(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def _pool_out(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool = False) -> int:
    span = size + 2 * padding - kernel
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    # As in torch: the last window must start inside the input or its left padding.
    return out - 1 if (out - 1) * stride >= size + padding else out


def layer_output_shape(layer: Layer, shape: Shape, num_classes: int) -> Shape:
    """The per-sample shape `layer` produces from `shape`; ValueError says why it cannot."""
    if isinstance(layer, Conv2d | MaxPool | AvgPool):
        if len(shape) != 3:
            raise ValueError(f"needs a CxHxW map, got {_describe(shape)}")
        c, h, w = shape
        stride = layer.stride if isinstance(layer, Conv2d) else (layer.stride or layer.kernel_size)
        if layer.padding * 2 > layer.kernel_size and not isinstance(layer, Conv2d):
            raise ValueError(f"padding {layer.padding} exceeds half the kernel {layer.kernel_size}")
        ceil = not isinstance(layer, Conv2d) and layer.ceil_mode
        oh = _pool_out(h, layer.kernel_size, stride, layer.padding, ceil)
        ow = _pool_out(w, layer.kernel_size, stride, layer.padding, ceil)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"kernel {layer.kernel_size} (padding {layer.padding}) needs a map of at least "
                f"{layer.kernel_size - 2 * layer.padding}x{layer.kernel_size - 2 * layer.padding}, "
                f"got {h}x{w}"
            )
        return (layer.out_channels if isinstance(layer, Conv2d) else c, oh, ow)
    if isinstance(layer, AdaptivePool):
        if len(shape) != 3:
            raise ValueError(f"needs a CxHxW map, got {_describe(shape)}")
        return (shape[0], layer.output_size, layer.output_size)
    if isinstance(layer, BatchNorm):
        if len(shape) not in (1, 3):
            raise ValueError(f"needs a CxHxW map or a vector, got {_describe(shape)}")
        return shape
    if isinstance(layer, Flatten):
        total = 1
        for d in shape:
            total *= d
        return (total,)
    if isinstance(layer, Linear):
        if len(shape) != 1:
            raise ValueError(f"needs a vector (add a flatten first), got {_describe(shape)}")
        out = num_classes if layer.out_features == "num_classes" else layer.out_features
        return (out,)
    return shape  # relu, dropout


def check_head(
    layers: tuple[Layer, ...], in_shape: Shape, num_classes: int, where: str
) -> list[Shape]:
    """Shapes after every layer; `ExitSpecError` naming the exit, the layer and the mismatch."""
    shapes = [in_shape]
    for i, layer in enumerate(layers):
        try:
            shapes.append(layer_output_shape(layer, shapes[-1], num_classes))
        except ValueError as exc:
            raise ExitSpecError(f"{where}: layer {i} ({layer.type}) {exc}") from None
    if shapes[-1] != (num_classes,):
        raise ExitSpecError(
            f"{where}: the head ends in shape {_describe(shapes[-1])}, expected {num_classes} "
            "class logits (end with flatten and linear)"
        )
    return shapes


def head_parameters(layers: tuple[Layer, ...], shapes: list[Shape]) -> int:
    """Parameters of a head whose layers produce `shapes` (as `check_head` gives them)."""
    total = 0
    for layer, before, after in zip(layers, shapes, shapes[1:], strict=False):
        if isinstance(layer, Conv2d):
            total += before[0] * after[0] * layer.kernel_size**2 + (after[0] if layer.bias else 0)
        elif isinstance(layer, Linear):
            total += before[0] * after[0] + (after[0] if layer.bias else 0)
        elif isinstance(layer, BatchNorm):
            total += 2 * before[0]
        elif isinstance(layer, AdaptivePool) and layer.mode == "mixed":
            total += 1
    return total
