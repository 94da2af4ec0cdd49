"""Cut points of a Keras model, and the sub-models between any two of them.

A cut point is a position in the model's graph after which exactly one tensor is live, so the
model can be split there by shipping that one tensor. As in the torch backend the search is a
liveness sweep over the layer calls in topological order and needs no per-model knowledge:
inside a residual or inception block the skip tensors are live next to the main path, so no cut
lands there. Of two cuts with only free work between them (no FLOPs, no parameters, the same
tensor size: a ReLU after a BatchNorm, a ReLU after a residual sum) only the later is kept.

The graph is the functional graph Keras records for every functional model. A `Sequential`
model, a model whose input has unknown sizes, and a model with nested models inside are first
re-traced: their layers are called again, shared and in order, on an input of the requested
shape, with nested single-input models inlined, so their inner blocks can be cut too. Subclassed
models have no recorded graph and are refused.

Costs are those the torch backend reports, so the same architecture gets the same numbers in
both frameworks: FLOPs count multiply-adds twice in convolutions and dense layers (what
`torch.utils.flop_counter` counts; normalisation, pooling and element-wise layers count zero),
and parameter bytes are every weight except BatchNorm's moving statistics (torch buffers).

Keras' public API has no graph walk, so this module reads the functional graph's nodes
(`Functional._nodes_by_depth`, `Node.arguments`), the structures `keras.Model` itself uses to
clone and run graphs. The tests cut every zoo model at every point, so a Keras change that
breaks this shows up there.
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
from inferedge.dnn.tensorflow.layout import Shape, describe, to_boundary, to_internal

Tracing = Literal["keras"]
_SEED = 0


@dataclass(frozen=True)
class _Tensor:
    """What the sweep needs of one tensor: per-sample shape (channels-last) and size."""

    shape: Shape | None  # None when a size other than the batch is unknown
    dtype: str
    nbytes: int  # one sample's bytes; 0 when the shape is unknown


@dataclass(frozen=True)
class _Call:
    """One layer call of the graph."""

    layer: Any
    name: str
    inputs: tuple[int, ...]  # ids of the KerasTensors it reads
    outputs: tuple[Any, ...]  # the KerasTensors it writes


def _tensor(kt: Any) -> _Tensor:
    dims = tuple(kt.shape[1:])
    dtype = str(kt.dtype)
    # A fixed batch size of 1 (Input(batch_size=1)) still leaves one sample per batch.
    batched = len(kt.shape) >= 1 and kt.shape[0] in (None, 1)
    if not batched or any(d is None for d in dims) or len(dims) == 0:
        return _Tensor(None, dtype, 0)
    shape = tuple(int(d) for d in dims)
    return _Tensor(shape, dtype, int(np.prod(shape)) * np.dtype(dtype).itemsize)


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
        calls: Sequence[_Call],
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
    calls = _calls(functional)
    _check_logits(calls[-1], name)
    _check_runs(functional, input_shape, name)
    (output,) = functional.outputs
    sweep = _Liveness(calls, id(output))
    candidates, running = sweep.sweep()
    if not candidates or candidates[-1][0] is not output:
        raise ModelRefError(
            f"model {name!r} must return a single tensor with a leading batch dimension to be cut"
        )
    cuts = kept_cuts(candidates, sweep.costs)
    peaks = segment_peaks(cuts, lambda source: sweep.held_bytes([id(source)]), running)
    return CutGraph(
        functional,
        cut_points=tuple(sweep.cut_point(k, *cut) for k, cut in enumerate(cuts)),
        tensors=tuple(kt for kt, _ in cuts),
        positions=tuple(pos for _, pos in cuts),
        candidates=candidates,
        calls=calls,
        peak_bytes=peaks,
    )


# --- The functional graph ---


def functional_view(model: Any, input_shape: Shape, *, name: str) -> Any:
    """`model` as one flat functional model on inputs of `input_shape` (C x H x W).

    A functional model with that input shape and no nested models is returned as it is; any
    other is re-traced onto a new input, sharing its layers (and so its weights).
    """
    internal = to_internal(input_shape)
    if isinstance(model, keras.Sequential):
        if not model.built:
            # Built for this input, the user's model itself can save and load its weights.
            try:
                model.build((None, *internal))
            except Exception as exc:  # the user's layers decide what they accept
                raise ModelRefError(
                    f"model {name!r} cannot be built for inputs of shape "
                    f"{describe(input_shape)}: {one_line(exc)}"
                ) from None
        return _retrace(model, internal, input_shape, name)
    if not isinstance(model, Functional):
        raise ModelRefError(
            f"model {name!r} is a subclassed {type(model).__name__} with no layer graph; only "
            "functional and Sequential Keras models can be cut"
        )
    if len(model.inputs) != 1:
        raise ModelRefError(
            f"model {name!r} takes {len(model.inputs)} inputs; only single-input models can be cut"
        )
    if len(model.outputs) != 1:
        raise ModelRefError(f"model {name!r} must return a single tensor to be cut")
    declared = tuple(model.inputs[0].shape[1:])
    if len(declared) != len(internal) or any(
        d is not None and d != want for d, want in zip(declared, internal, strict=False)
    ):
        shown = tuple("?" if d is None else d for d in declared)
        raise ModelRefError(
            f"model {name!r} takes inputs of shape {shown} (Keras, channels-last), not "
            f"{internal}, which is the requested {describe(input_shape)} (C x H x W)"
        )
    nested = any(isinstance(layer, keras.Model) for layer in model.layers)
    if declared == internal and not nested:
        return model
    return _retrace(model, internal, input_shape, name)


def _retrace(model: Any, internal: Shape, input_shape: Shape, name: str) -> Any:
    dtype = model.inputs[0].dtype if isinstance(model, Functional) else "float32"
    inputs = keras.Input(shape=internal, dtype=dtype, name="image")
    try:
        outputs = _Inliner(model).inline(model, inputs)
        return keras.Model(inputs, outputs, name=model.name)
    except ModelRefError:
        raise
    except Exception as exc:  # any error of the user's layers on this input is a bad reference
        raise ModelRefError(
            f"model {name!r} cannot be traced on inputs of shape {describe(input_shape)}: "
            f"{one_line(exc)}"
        ) from None


def _inlinable(layer: Any) -> bool:
    return isinstance(layer, keras.Sequential) or (
        isinstance(layer, Functional) and len(layer.inputs) == len(layer.outputs) == 1
    )


def _members(model: Any) -> list[Any]:
    """The layers (or operations) `model` calls, each once, in order."""
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    found = {id(n.operation): n.operation for n in _ordered_nodes(model) if not n.is_input}
    return list(found.values())


class _Inliner:
    """Calls a model's layers on a new input, inlining nested single-input models.

    A functional model needs unique layer names, and nested models keep their own namespaces:
    two blocks loaded from different files may both hold a layer `act`. A nested model whose
    layers would clash is therefore called whole (one operation of the graph) instead.
    """

    def __init__(self, model: Any) -> None:
        owners: dict[str, set[int]] = {}
        for leaf in self._leaves(model):
            owners.setdefault(leaf.name, set()).add(id(leaf))
        self._clashing = {name for name, ids in owners.items() if len(ids) > 1}

    def _leaves(self, model: Any) -> list[Any]:
        leaves = []
        for layer in _members(model):
            leaves += self._leaves(layer) if _inlinable(layer) else [layer]
        return leaves

    def inline(self, model: Any, x: Any) -> Any:
        """Call `model`'s layers on `x` in order."""
        if isinstance(model, keras.Sequential):
            for layer in model.layers:
                x = self._call(layer, (x,), {})
            return x
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ModelRefError(
                f"model {model.name!r} takes {len(model.inputs)} inputs and returns "
                f"{len(model.outputs)} tensors; only single-input, single-output models can be cut"
            )
        values = {id(model.inputs[0]): x}
        for node in _ordered_nodes(model):
            if node.is_input:
                continue
            args, kwargs = node.arguments.fill_in(values)
            result = self._call(node.operation, args, kwargs)
            for ref, new in zip(node.outputs, keras.tree.flatten(result), strict=True):
                values[id(ref)] = new
        return values[id(model.outputs[0])]

    def _call(self, layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        whole = (
            not _inlinable(layer)
            or len(args) != 1
            or any(value is not None for value in kwargs.values())
            or any(leaf.name in self._clashing for leaf in self._leaves(layer))
        )
        return layer(*args, **kwargs) if whole else self.inline(layer, args[0])


def _ordered_nodes(model: Any) -> list[Any]:
    """The model's nodes in topological order (inputs first)."""
    by_depth = model._nodes_by_depth
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def _calls(model: Any) -> list[_Call]:
    """The model's layer calls in topological order, the input layer first."""
    nodes = _ordered_nodes(model)
    calls_per_layer: dict[int, int] = {}
    for node in nodes:
        calls_per_layer[id(node.operation)] = calls_per_layer.get(id(node.operation), 0) + 1
    seen: dict[int, int] = {}
    calls = []
    for node in nodes:
        layer = node.operation
        name = layer.name
        if calls_per_layer[id(layer)] > 1:
            # A shared layer is cut after each of its calls separately.
            seen[id(layer)] = seen.get(id(layer), 0) + 1
            name = f"{name}:{seen[id(layer)]}"
        calls.append(
            _Call(
                layer=layer,
                name=name,
                inputs=tuple(id(t) for t in node.input_tensors),
                outputs=tuple(node.outputs),
            )
        )
    return calls


def _check_logits(last: _Call, name: str) -> None:
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
        for node in _ordered_nodes(model)
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


# --- Liveness ---


class _Liveness:
    """Liveness, sizes and cumulative costs over the layer calls of a functional graph."""

    def __init__(self, calls: list[_Call], output: int) -> None:
        self.calls = calls
        self.tensors: dict[int, _Tensor] = {}
        self.keras_tensors: dict[int, Any] = {}
        for call in calls:
            for kt in call.outputs:
                self.tensors[id(kt)] = _tensor(kt)
                self.keras_tensors[id(kt)] = kt
        # The model's output is read by the caller, after the last call.
        self.last_use = {output: len(calls)}
        for pos, call in enumerate(calls):
            for used in call.inputs:
                self.last_use[used] = max(self.last_use.get(used, -1), pos)
        self.cum_flops, self.cum_params = self._cumulative_costs()

    def _cumulative_costs(self) -> tuple[list[int], list[int]]:
        flops = []
        params = []
        charged: set[int] = set()
        for call in self.calls:
            inputs = [self.keras_tensors[i] for i in call.inputs if i in self.keras_tensors]
            flops.append(layer_flops(call.layer, inputs, call.outputs))
            # A shared layer's weights are charged where the graph first uses them.
            fresh = {v: n for v, n in weight_bytes(call.layer).items() if v not in charged}
            charged |= fresh.keys()
            params.append(sum(fresh.values()))
        return list(accumulate(flops)), list(accumulate(params))

    def sweep(self) -> tuple[list[tuple[Any, int]], list[int]]:
        """Positions after which one batch-of-one tensor alone is live (each tensor once, at its
        first such position), and the activation memory held while each call runs."""
        live: dict[int, None] = {}  # insertion-ordered set
        running: list[int] = []
        candidates: list[tuple[Any, int]] = []
        seen: set[int] = set()
        for pos, call in enumerate(self.calls):
            produced = [id(kt) for kt in call.outputs]
            running.append(self.held_bytes([*live, *produced]))
            for value in produced:
                if self.last_use.get(value, -1) > pos:
                    live[value] = None
            for used in call.inputs:
                if used in live and self.last_use[used] == pos:
                    del live[used]
            if len(live) == 1:
                (value,) = live
                if value not in seen and self.tensors[value].shape is not None:
                    seen.add(value)
                    candidates.append((self.keras_tensors[value], pos))
        return candidates, running

    def held_bytes(self, values: Iterable[int]) -> int:
        """Bytes of one sample's tensors among `values`, each counted once."""
        return sum(self.tensors[v].nbytes for v in set(values) if v in self.tensors)

    def costs(self, kt: Any, pos: int) -> tuple[int, int, int]:
        """Cumulative FLOPs and parameter bytes at `pos`, and the bytes of `kt`."""
        return self.cum_flops[pos], self.cum_params[pos], self.tensors[id(kt)].nbytes

    def producer(self, kt: Any) -> str:
        """The name of the call that wrote `kt`."""
        for call in self.calls:
            if any(out is kt for out in call.outputs):
                return call.name
        raise KeyError(kt)

    def cut_point(self, k: int, kt: Any, pos: int) -> CutPoint:
        """Cut point `k`: `kt`, after position `pos`, its shape in inferedge's layout."""
        tensor = self.tensors[id(kt)]
        assert tensor.shape is not None  # sweep() yields known shapes only
        return CutPoint(
            index=k,
            name=self.producer(kt),
            shape=to_boundary(tensor.shape),
            dtype=tensor.dtype,
            activation_bytes=tensor.nbytes,
            cum_flops=self.cum_flops[pos],
            cum_param_bytes=self.cum_params[pos],
        )
