"""Exit heads in Keras: `inferedge.core.exits` layers rendered as a functional `keras.Model`.

A head is built only after `check_head` has proved, in C x H x W terms, that its layers turn the
exit point's activation into class logits; the errors are the core's, word for word, whatever
the framework. The rendered model takes the activation channels-last, as the backbone holds it,
and computes what the torch rendering computes: padding, ceil-mode windows, adaptive bins and
the flatten order (channels first) follow torch, so a head's weights could move between the
two frameworks (the parity tests do exactly that).

Two layer kinds have no stock Keras equivalent and are custom layers, registered for
serialisation under the `inferedge` package: `AdaptivePool2D` (torch's adaptive bins, with
SDN's learned max/average blend as mode `mixed`) and `WindowPool2D` (pooling with explicit
padding or ceil mode, counting padding as torch does).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import keras
import numpy as np
from keras import layers, ops
from pydantic import ValidationError

from inferedge.core.exits import (
    AdaptivePool,
    AvgPool,
    BatchNorm,
    Conv2d,
    Dropout,
    ExitHeadSpec,
    Flatten,
    Layer,
    Linear,
    MaxPool,
    ReLU,
    check_head,
)
from inferedge.dnn import heads
from inferedge.dnn.heads import classifier_spec, square
from inferedge.dnn.tensorflow.graph import CutGraph
from inferedge.dnn.tensorflow.layout import TO_CHANNELS_FIRST, Shape, to_boundary, to_internal

PoolMode = Literal["avg", "max", "mixed"]
# torch's BatchNorm defaults; Keras' (epsilon 1e-3, momentum 0.99) would train differently.
_BN_EPSILON = 1e-5
_BN_MOMENTUM = 0.9


def _bins(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive pooling windows: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


@keras.saving.register_keras_serializable(package="inferedge")
class AdaptivePool2D(layers.Layer):  # type: ignore[misc]
    """Pooling of a channels-last map to `output_size` x `output_size`, with torch's bins.

    `mixed` is SDN's pooling: sigmoid(blend) * max + (1 - sigmoid(blend)) * average, with
    `blend` one learnable scalar that starts at 0 (an even blend).
    """

    def __init__(self, output_size: int, mode: PoolMode = "avg", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.output_size = output_size
        self.mode = mode

    def build(self, input_shape: Any) -> None:
        """Create the blend weight of mode `mixed`."""
        if self.mode == "mixed":
            self.blend = self.add_weight(name="blend", shape=(), initializer="zeros")

    def _pool(self, x: Any, reduce: Any) -> Any:
        # Windows are rectangles of whole rows and columns, so pooling rows, then columns, is
        # pooling each window (for the mean too: a window's rows all have the same width).
        size = self.output_size
        rows = [reduce(x[:, a:b], axis=1, keepdims=True) for a, b in _bins(x.shape[1], size)]
        x = ops.concatenate(rows, axis=1)
        cols = [reduce(x[:, :, a:b], axis=2, keepdims=True) for a, b in _bins(x.shape[2], size)]
        return ops.concatenate(cols, axis=2)

    def call(self, x: Any) -> Any:
        """Pool `x` (N x H x W x C)."""
        if self.mode == "avg":
            return self._pool(x, ops.mean)
        if self.mode == "max":
            return self._pool(x, ops.max)
        weight = ops.sigmoid(self.blend)
        return weight * self._pool(x, ops.max) + (1 - weight) * self._pool(x, ops.mean)

    def compute_output_shape(self, input_shape: Any) -> Any:
        """N x output_size x output_size x C."""
        return (input_shape[0], self.output_size, self.output_size, input_shape[3])

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for saving."""
        return {**super().get_config(), "output_size": self.output_size, "mode": self.mode}


def _ceil_extra(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Extra right/bottom padding that ceil mode needs for its last window (0 without)."""
    span = size + 2 * padding - kernel
    out = span // stride + 1
    if ceil_mode:
        out = -(-span // stride) + 1
        # As in torch: the last window must start inside the input or its left padding.
        if (out - 1) * stride >= size + padding:
            out -= 1
    return max((out - 1) * stride + kernel - (size + 2 * padding), 0)


@keras.saving.register_keras_serializable(package="inferedge")
class WindowPool2D(layers.Layer):  # type: ignore[misc]
    """Max or average pooling with explicit padding and ceil mode, as torch pools.

    Max pooling pads with -inf, so padding never wins. Average pooling divides each window by
    its size within the padded input, not by the part the ceil mode adds beyond it (torch's
    `count_include_pad=True`).
    """

    def __init__(
        self,
        mode: Literal["max", "avg"],
        kernel_size: int,
        stride: int,
        padding: int = 0,
        ceil_mode: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.ceil_mode = ceil_mode

    def _extra(self, size: int) -> int:
        return _ceil_extra(size, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def call(self, x: Any) -> Any:
        """Pool `x` (N x H x W x C)."""
        h, w = int(x.shape[1]), int(x.shape[2])
        p = self.padding
        pads = [[0, 0], [p, p + self._extra(h)], [p, p + self._extra(w)], [0, 0]]
        window = (self.kernel_size, self.kernel_size)
        strides = (self.stride, self.stride)
        if self.mode == "max":
            padded = ops.pad(x, pads, constant_values=-math.inf)
            return ops.max_pool(padded, window, strides, padding="valid")
        mean = ops.average_pool(ops.pad(x, pads), window, strides, padding="valid")
        return mean * ops.convert_to_tensor(self._scale(h, w), dtype=x.dtype)

    def _scale(self, h: int, w: int) -> np.ndarray:
        """kernel area / window area within the padded input, per output position."""
        k, s, p = self.kernel_size, self.stride, self.padding

        def extent(size: int) -> np.ndarray:
            starts = np.arange(0, size + 2 * p + self._extra(size) - k + 1, s)
            return np.minimum(k, size + 2 * p - starts)

        area = np.outer(extent(h), extent(w)).astype(np.float32)
        return (k * k / area)[None, :, :, None]

    def compute_output_shape(self, input_shape: Any) -> Any:
        """N x H' x W' x C."""
        k, s, p = self.kernel_size, self.stride, self.padding
        h, w = input_shape[1], input_shape[2]
        oh = (h + 2 * p + self._extra(h) - k) // s + 1
        ow = (w + 2 * p + self._extra(w) - k) // s + 1
        return (input_shape[0], oh, ow, input_shape[3])

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, for saving."""
        return {
            **super().get_config(),
            "mode": self.mode,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
        }


HEAD_LAYERS: dict[str, type] = {
    keras.saving.get_registered_name(layer): layer for layer in (AdaptivePool2D, WindowPool2D)
}
"""The head layers by registered name: the only classes outside Keras a model file may name."""


def _window_pool(layer: MaxPool | AvgPool, shape: Shape) -> list[Any]:
    stride = layer.stride or layer.kernel_size
    mode: Literal["max", "avg"] = "max" if isinstance(layer, MaxPool) else "avg"
    extra = [
        _ceil_extra(size, layer.kernel_size, stride, layer.padding, layer.ceil_mode)
        for size in shape[1:]
    ]
    if layer.padding == 0 and not any(extra):
        stock = layers.MaxPooling2D if mode == "max" else layers.AveragePooling2D
        return [stock(pool_size=layer.kernel_size, strides=stride, padding="valid")]
    return [WindowPool2D(mode, layer.kernel_size, stride, layer.padding, layer.ceil_mode)]


def keras_layers(layer: Layer, shape: Shape, num_classes: int) -> list[Any]:
    """The Keras layers doing what spec `layer` does to per-sample inputs of `shape` (C x H x W)."""
    if isinstance(layer, Conv2d):
        conv = layers.Conv2D(
            layer.out_channels,
            layer.kernel_size,
            strides=layer.stride,
            padding="valid",
            use_bias=layer.bias,
        )
        return [layers.ZeroPadding2D(layer.padding), conv] if layer.padding else [conv]
    if isinstance(layer, BatchNorm):
        return [layers.BatchNormalization(axis=-1, epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM)]
    if isinstance(layer, ReLU):
        return [layers.ReLU()]
    if isinstance(layer, MaxPool | AvgPool):
        return _window_pool(layer, shape)
    if isinstance(layer, AdaptivePool):
        return [AdaptivePool2D(layer.output_size, layer.mode)]
    if isinstance(layer, Flatten):
        # torch flattens C x H x W maps channel by channel; permuting first keeps that order.
        return (
            [layers.Permute(TO_CHANNELS_FIRST), layers.Flatten()]
            if len(shape) == 3
            else [layers.Flatten()]
        )
    if isinstance(layer, Linear):
        units = num_classes if layer.out_features == "num_classes" else layer.out_features
        return [layers.Dense(units, use_bias=layer.bias)]
    assert isinstance(layer, Dropout)
    return [layers.Dropout(layer.p)]


def render_head(
    spec_layers: tuple[Layer, ...], in_shape: Shape, num_classes: int, where: str = "exit head"
) -> Any:
    """The head as a functional `keras.Model` taking channels-last activations of `in_shape`
    (given C x H x W), with weights drawn from Keras' global generators.

    Raises `ExitSpecError` (naming `where`, the layer and the mismatch) when the layers do not
    turn a per-sample tensor of `in_shape` into `num_classes` logits.
    """
    shapes = check_head(spec_layers, in_shape, num_classes, where)
    inputs = keras.Input(shape=to_internal(in_shape), name="activation")
    x = inputs
    for layer, shape, expected in zip(spec_layers, shapes[:-1], shapes[1:], strict=True):
        for rendered in keras_layers(layer, shape, num_classes):
            x = rendered(x)
        # The core's arithmetic and Keras' must agree; a mismatch is a bug here, not bad input.
        assert to_boundary(tuple(x.shape[1:])) == expected, (layer, x.shape, expected)
    return keras.Model(inputs, x, name="exit_head")


def resolve_layers(spec: ExitHeadSpec, in_shape: Shape, graph: CutGraph) -> tuple[Layer, ...]:
    """The layers of `spec` for an exit whose activation has shape `in_shape` (C x H x W)."""
    return heads.resolve_layers(spec, in_shape, lambda: classifier_layers(graph))


# --- The backbone's own classifier as spec layers ---


def classifier_layers(graph: CutGraph) -> tuple[Layer, ...]:
    """The backbone's classifier (everything after its last C x H x W cut point, or after its
    last C x H x W map when that chain cannot be expressed) as spec layers.

    The last linear layer gives `num_classes`. Returns () when neither is a plain chain of
    layers the spec can express (a ReLU6, a "same"-padded strided pool, ...).
    """
    for chain in graph.classifier_chains():
        spec = _map_chain(chain)
        if spec:
            return spec
    return ()


def _map_chain(chain: list[Any]) -> tuple[Layer, ...]:
    spec: list[Layer] = []
    try:
        for layer in chain:
            mapped = _map_layer(layer)
            if mapped is None:
                return ()
            spec += mapped
    except ValidationError:  # a value outside the spec's bounds, e.g. a 100x100 pool
        return ()
    return classifier_spec(spec)


def _activation(layer: Any) -> list[Layer] | None:
    activation = getattr(layer, "activation", keras.activations.linear)
    if activation is keras.activations.linear:
        return []
    if activation is keras.activations.relu:
        return [ReLU()]
    return None


def _map_layer(layer: Any) -> list[Layer] | None:
    """Spec layers doing what Keras `layer` does ([] for an identity), or None if none can."""
    channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"
    if not channels_last:
        return None
    if isinstance(layer, layers.GlobalAveragePooling2D | layers.GlobalMaxPooling2D):
        mode: Literal["avg", "max"] = (
            "avg" if isinstance(layer, layers.GlobalAveragePooling2D) else "max"
        )
        pool: list[Layer] = [AdaptivePool(mode=mode, output_size=1)]
        return pool if layer.keepdims else [*pool, Flatten()]
    if isinstance(layer, layers.Flatten):
        return [Flatten()]
    if isinstance(layer, layers.Identity):
        return []
    if isinstance(layer, layers.Dropout):
        return [Dropout(p=float(layer.rate))]
    if isinstance(layer, layers.BatchNormalization):
        spec = layer.input_spec
        last = layer.axis == -1 or (spec is not None and layer.axis == spec.ndim - 1)
        return [BatchNorm()] if last else None
    if isinstance(layer, layers.ReLU):
        plain = layer.max_value is None and not layer.negative_slope and not layer.threshold
        return [ReLU()] if plain else None
    if isinstance(layer, layers.Activation):
        return _activation(layer)
    if isinstance(layer, layers.Dense):
        act = _activation(layer)
        if act is None:
            return None
        return [Linear(out_features=int(layer.units), bias=bool(layer.use_bias)), *act]
    if isinstance(layer, layers.MaxPooling2D | layers.AveragePooling2D):
        kernel, stride = square(layer.pool_size), square(layer.strides)
        if kernel is None or stride is None or layer.padding != "valid":
            return None
        kind = MaxPool if isinstance(layer, layers.MaxPooling2D) else AvgPool
        return [kind(kernel_size=kernel, stride=stride)]
    if isinstance(layer, layers.Conv2D) and type(layer) is layers.Conv2D:
        return _map_conv(layer)
    return None


def _map_conv(layer: Any) -> list[Layer] | None:
    kernel, stride = square(layer.kernel_size), square(layer.strides)
    if kernel is None or stride is None or layer.groups != 1 or square(layer.dilation_rate) != 1:
        return None
    if layer.padding == "valid":
        padding = 0
    elif layer.padding == "same" and stride == 1 and kernel % 2 == 1:
        padding = kernel // 2  # with stride 1 and an odd kernel, "same" pads symmetrically
    else:
        return None
    act = _activation(layer)
    if act is None:
        return None
    conv = Conv2d(
        out_channels=int(layer.filters),
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        bias=bool(layer.use_bias),
    )
    return [conv, *act]
