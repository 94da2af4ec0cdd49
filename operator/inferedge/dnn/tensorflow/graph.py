"""Cut points of a Keras model, and the sub-models between any two of them.

A cut point is a position in the model's graph after which exactly one tensor is live, so the
model can be split there by shipping that one tensor. As in the torch backend the search is a
liveness sweep over the layer calls in topological order and needs no per-model knowledge
(`inferedge.dnn.tensorflow.liveness`), over the model as one flat functional graph
(`inferedge.dnn.tensorflow.functional`). Of two cuts with only free work between them (no FLOPs,
no parameters, the same tensor size: a ReLU after a BatchNorm, a ReLU after a residual sum) only
the later is kept.

Costs are those the torch backend reports, so the same architecture gets the same numbers in
both frameworks: FLOPs count multiply-adds twice in convolutions and dense layers (what
`torch.utils.flop_counter` counts; normalisation, pooling and element-wise layers count zero),
and parameter bytes are every weight except BatchNorm's moving statistics (torch buffers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Literal

import keras
import numpy as np
from keras import layers
from keras.src.models.functional import Functional

from inferedge.core.errors import ModelRefError, one_line
from inferedge.core.profile import CutPoint
from inferedge.dnn.cuts import CutSequence, kept_cuts, segment_peaks
from inferedge.dnn.tensorflow.functional import (
    LayerCall,
    functional_view,
    layer_calls,
    ordered_nodes,
)
from inferedge.dnn.tensorflow.layout import Shape, describe, to_boundary, to_internal
from inferedge.dnn.tensorflow.liveness import Liveness

Tracing = Literal["keras"]
_SEED = 0


class CutGraph(CutSequence[Any]):
    """A Keras model's graph with its cut points; builds head, tail and segment sub-models.

    Sub-models are functional `keras.Model`s sharing the original layers and weights, taking and
    returning channels-last tensors, so `tail(k)(head(k)(x))` computes what the model computes.
    Cut point shapes are reported in inferedge's C x H x W layout.
    """

    tracing: Tracing = "keras"

    def __init__(
        self,
        model: Any,
        *,
        cut_points: tuple[CutPoint, ...],
        tensors: tuple[Any, ...],
        positions: tuple[int, ...],
        candidates: Sequence[tuple[Any, int]],
        calls: Sequence[LayerCall],
        peak_bytes: tuple[int, ...],
    ) -> None:
        super().__init__(cut_points, peak_bytes)
        self.model = model
        self._tensors = tensors  # the KerasTensor at each cut
        self._positions = positions  # the position in `calls` after which each cut falls
        # Every (tensor, position) after which that tensor alone is live, dropped cuts included.
        self._candidates = tuple(candidates)
        self._calls = tuple(calls)
        self._between: dict[tuple[int, int], Any] = {}

    def internal_shape(self, k: int) -> Shape:
        """The per-sample shape of cut k's tensor as Keras holds it (channels-last)."""
        return to_internal(self.cut_points[k].shape)

    def classifier_chains(self) -> list[list[Any]]:
        """Candidates for the backbone's classifier: the layers after the last cut holding an
        image map (as the torch backend takes it), then those after the last position where a
        map alone is live, which may be a cut dropped as equivalent to a later one (a 1x1 map
        before global pooling). Only chains are returned: layers that each read only the
        previous one's single output, up to the model's output.
        """
        kept = [(kt, pos) for kt, pos in zip(self._tensors, self._positions, strict=True)]
        starts = [
            next(((kt, pos) for kt, pos in reversed(found) if len(kt.shape) == 4), None)
            for found in (kept, list(self._candidates))
        ]
        chains = []
        for start in starts:
            chain = None if start is None else self._chain_after(*start)
            if chain is not None and chain not in chains:
                chains.append(chain)
        return chains

    def _chain_after(self, tensor: Any, position: int) -> list[Any] | None:
        previous = id(tensor)
        chain = []
        for call in self._calls[position + 1 :]:
            if call.inputs != (previous,) or len(call.outputs) != 1:
                return None
            chain.append(call.layer)
            previous = id(call.outputs[0])
        return chain

    def between(self, start: int, end: int) -> Any:
        """The model from cut `start` to cut `end` (0 <= start <= end <= K), built once."""
        self.check_range(start, end)
        key = (start, end)
        if key not in self._between:
            name = f"cuts_{start}_to_{end}"
            if start == end:
                inputs = keras.Input(shape=self.internal_shape(start))
                self._between[key] = keras.Model(inputs, layers.Identity()(inputs), name=name)
            else:
                # Keras builds a model between intermediate tensors by cloning the nodes in
                # between onto a fresh input; with one tensor crossing, nothing else is needed.
                self._between[key] = keras.Model(
                    self._tensors[start], self._tensors[end], name=name
                )
        return self._between[key]


def build_cut_graph(model: Any, input_shape: Shape, *, name: str) -> CutGraph:
    """Find the cut points of `model` for per-sample inputs of `input_shape` (C x H x W).

    Raises `ModelRefError` when the model has no functional graph, takes or returns more than
    one tensor, ends in a softmax, or fails on a batch of one.
    """
    functional = functional_view(model, input_shape, name=name)
    calls = layer_calls(functional)
    _check_logits(calls[-1], name)
    _check_runs(functional, input_shape, name)
    (output,) = functional.outputs
    sweep = Liveness(calls, id(output))
    candidates, running = sweep.sweep()
    if not candidates or candidates[-1][0] is not output:
        raise ModelRefError(
            f"model {name!r} must return a single tensor with a leading batch dimension to be cut"
        )
    costs = _Costs(sweep)
    cuts = kept_cuts(candidates, costs.costs)
    peaks = segment_peaks(cuts, lambda source: sweep.held_bytes([id(source)]), running)
    return CutGraph(
        functional,
        cut_points=tuple(costs.cut_point(k, *cut) for k, cut in enumerate(cuts)),
        tensors=tuple(kt for kt, _ in cuts),
        positions=tuple(pos for _, pos in cuts),
        candidates=candidates,
        calls=calls,
        peak_bytes=peaks,
    )


def _check_logits(last: LayerCall, name: str) -> None:
    layer = last.layer
    softmax = isinstance(layer, layers.Softmax) or (
        getattr(layer, "activation", None) is keras.activations.softmax
    )
    if softmax:
        raise ModelRefError(
            f"model {name!r} ends in a softmax ({layer.name}); inferedge needs logits: build it "
            "with activation=None (keras.applications: classifier_activation=None)"
        )


def _check_runs(model: Any, input_shape: Shape, name: str) -> None:
    example = np.random.default_rng(_SEED).standard_normal((1, *to_internal(input_shape)))
    try:
        model(example.astype(np.float32), training=False)
    except Exception as exc:  # any error of the user's model on this input is a bad reference
        raise ModelRefError(
            f"model {name!r} fails on an input of shape {describe(input_shape)}: {one_line(exc)}"
        ) from None


# --- Costs ---

_CHANNEL_LAST = "channels_last"


def _positions(kt: Any, data_format: str) -> int:
    """Spatial positions of a batch-of-one tensor: its elements over its channels."""
    dims = [int(d) for d in kt.shape[1:]]
    channels = dims[-1] if data_format == _CHANNEL_LAST else dims[0]
    return int(np.prod(dims)) // max(channels, 1)


def _size(variable: Any) -> int:
    return int(np.prod(variable.shape))


def layer_flops(layer: Any, inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """FLOPs of one call of `layer` for one sample, counted as torch's flop counter does.

    Convolutions and dense layers count two per multiply-add (bias and activation excluded);
    a nested model counts its layers; everything else counts zero. A shape with unknown sizes
    counts zero.
    """
    try:
        if isinstance(layer, keras.Model):
            return model_flops(layer)
        if isinstance(layer, layers.SeparableConv1D | layers.SeparableConv2D):
            kernels = _size(layer.depthwise_kernel) + _size(layer.pointwise_kernel)
            return 2 * _positions(outputs[0], layer.data_format) * kernels
        if isinstance(
            layer, layers.Conv1DTranspose | layers.Conv2DTranspose | layers.Conv3DTranspose
        ):
            # Each input position scatters the whole kernel (torch counts transposed convs so).
            return 2 * _positions(inputs[0], layer.data_format) * _size(layer.kernel)
        if isinstance(
            layer,
            layers.Conv1D
            | layers.Conv2D
            | layers.Conv3D
            | layers.DepthwiseConv1D
            | layers.DepthwiseConv2D,
        ):
            return 2 * _positions(outputs[0], layer.data_format) * _size(layer.kernel)
        if isinstance(layer, layers.Dense):
            return 2 * _positions(inputs[0], _CHANNEL_LAST) * _size(layer.kernel)
    except (TypeError, ValueError):  # a size Keras does not know until run time
        return 0
    return 0


def model_flops(model: Any) -> int:
    """FLOPs of one sample through a functional model (see `layer_flops`)."""
    return sum(
        layer_flops(call.layer, call.node_inputs, call.outputs) for call in _flop_calls(model)
    )


@dataclass(frozen=True)
class _FlopCall:
    layer: Any
    node_inputs: tuple[Any, ...]
    outputs: tuple[Any, ...]


def _flop_calls(model: Any) -> list[_FlopCall]:
    if isinstance(model, keras.Sequential):
        model = getattr(model, "_functional", None) or model
    if not isinstance(model, Functional):
        return []
    return [
        _FlopCall(node.operation, tuple(node.input_tensors), tuple(node.outputs))
        for node in ordered_nodes(model)
        if not node.is_input
    ]


def weight_bytes(layer: Any) -> dict[int, int]:
    """Bytes of each of `layer`'s weights by variable id, BatchNorm moving statistics left out:
    torch keeps those as buffers, not parameters, and both backends must count alike."""
    statistics = {
        id(v)
        for sub in _layers_within(layer)
        if isinstance(sub, layers.BatchNormalization)
        for v in (sub.moving_mean, sub.moving_variance)
    }
    # Keras operations in a functional graph (keras.ops.add, ...) are not layers: no weights.
    return {
        id(v): int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        for v in getattr(layer, "weights", ())
        if id(v) not in statistics
    }


def _layers_within(layer: Any) -> Iterable[Any]:
    yield layer
    for sub in getattr(layer, "layers", ()):
        yield from _layers_within(sub)


class _Costs:
    """Cumulative FLOPs and parameter bytes after each layer call of a swept graph, and the cut
    points they price."""

    def __init__(self, sweep: Liveness) -> None:
        self._sweep = sweep
        self.cum_flops, self.cum_params = self._cumulative_costs()

    def _cumulative_costs(self) -> tuple[list[int], list[int]]:
        flops = []
        params = []
        charged: set[int] = set()
        known = self._sweep.keras_tensors
        for call in self._sweep.calls:
            inputs = [known[i] for i in call.inputs if i in known]
            flops.append(layer_flops(call.layer, inputs, call.outputs))
            # A shared layer's weights are charged where the graph first uses them.
            fresh = {v: n for v, n in weight_bytes(call.layer).items() if v not in charged}
            charged |= fresh.keys()
            params.append(sum(fresh.values()))
        return list(accumulate(flops)), list(accumulate(params))

    def costs(self, kt: Any, pos: int) -> tuple[int, int, int]:
        """Cumulative FLOPs and parameter bytes at `pos`, and the bytes of `kt`."""
        return self.cum_flops[pos], self.cum_params[pos], self._sweep.tensors[id(kt)].nbytes

    def cut_point(self, k: int, kt: Any, pos: int) -> CutPoint:
        """Cut point `k`: `kt`, after position `pos`, its shape in inferedge's layout."""
        tensor = self._sweep.tensors[id(kt)]
        assert tensor.shape is not None  # sweep() yields known shapes only
        return CutPoint(
            index=k,
            name=self._sweep.producer(kt),
            shape=to_boundary(tensor.shape),
            dtype=tensor.dtype,
            activation_bytes=tensor.nbytes,
            cum_flops=self.cum_flops[pos],
            cum_param_bytes=self.cum_params[pos],
        )
