"""A Keras model as one flat functional graph, and its layer calls in topological order.

The graph is the functional graph Keras records for every functional model. A `Sequential`
model, a model whose input has unknown sizes, and a model with nested models inside are first
re-traced: their layers are called again, shared and in order, on an input of the requested
shape, with nested single-input models inlined, so their inner blocks can be cut too. Subclassed
models have no recorded graph and are refused.

Keras' public API has no graph walk, so this module reads the functional graph's nodes
(`Functional._nodes_by_depth`, `Node.arguments`), the structures `keras.Model` itself uses to
clone and run graphs. The tests cut every zoo model at every point, so a Keras change that
breaks this shows up there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
from keras.src.models.functional import Functional

from inferedge.core.errors import ModelRefError, one_line
from inferedge.dnn.tensorflow.layout import Shape, describe, to_internal


@dataclass(frozen=True)
class LayerCall:
    """One layer call of the graph."""

    layer: Any
    name: str
    inputs: tuple[int, ...]  # ids of the KerasTensors it reads
    outputs: tuple[Any, ...]  # the KerasTensors it writes


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
    found = {id(n.operation): n.operation for n in ordered_nodes(model) if not n.is_input}
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
        for node in ordered_nodes(model):
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


def ordered_nodes(model: Any) -> list[Any]:
    """The model's nodes in topological order (inputs first)."""
    by_depth = model._nodes_by_depth
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def layer_calls(model: Any) -> list[LayerCall]:
    """The model's layer calls in topological order, the input layer first."""
    nodes = ordered_nodes(model)
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
            LayerCall(
                layer=layer,
                name=name,
                inputs=tuple(id(t) for t in node.input_tensors),
                outputs=tuple(node.outputs),
            )
        )
    return calls
