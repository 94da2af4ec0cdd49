"""Resolve a model reference to a Keras model.

A reference is one of: a zoo name (`small_resnet`), `package.module:callable` (a factory
returning a `keras.Model`; it gets `num_classes=` when its signature takes it), a Keras file
(`.keras`, or a legacy `.h5`) or a TensorFlow SavedModel directory. Keras files load in Keras'
safe mode, so a file cannot run code through a `Lambda` layer. A SavedModel has no Keras graph
left in it: it loads as one opaque layer, which can be profiled as a whole but not cut, trained
or exported. Every failure is a one-line `ModelRefError`.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import keras
from keras.src.backend.common import global_state

from inferedge.core.errors import ModelRefError, one_line
from inferedge.dnn.modelref import call_factory, unknown_model, wrong_type
from inferedge.dnn.protocols import ArtifactLoadError
from inferedge.dnn.tensorflow import zoo
from inferedge.dnn.tensorflow.archive import check_keras_file
from inferedge.dnn.tensorflow.exits import HEAD_LAYERS
from inferedge.dnn.tensorflow.layout import Shape, to_internal

RefKind = Literal["zoo", "callable", "keras", "savedmodel"]
KERAS_SUFFIXES = (".keras", ".h5")
_SAVED_MODEL_FILE = "saved_model.pb"
# Endpoints `Model.export()` writes: `serve` returns the tensor, `serving_default` a dict.
_ENDPOINTS = ("serve", "serving_default")


@dataclass(frozen=True)
class LoadedModel:
    """A Keras model and how it was referenced."""

    name: str
    source: str
    kind: RefKind
    model: Any


def load_model(ref: str, num_classes: int, input_shape: Shape, seed: int = 0) -> LoadedModel:
    """Load the model named by `ref`.

    `num_classes` and `input_shape` (per sample, C x H x W) configure zoo models and factories
    that take `num_classes`; `seed` draws a zoo model's weights. Files carry their own.
    """
    if ref.endswith(KERAS_SUFFIXES):
        return _load_file(ref)
    if (Path(ref) / _SAVED_MODEL_FILE).is_file():
        return _load_saved_model(ref, input_shape)
    if ":" in ref:
        return _load_callable(ref, num_classes)
    if ref not in zoo.ZOO_NAMES:
        raise unknown_model(ref, zoo.ZOO_NAMES, ["a .keras file", "a SavedModel directory"])
    with fresh_layer_names():
        model = zoo.build_model(ref, num_classes, input_shape, seed=seed)
    return LoadedModel(name=ref, source=ref, kind="zoo", model=model)


_NAME_COUNTERS = "object_name_uids"


@contextmanager
def fresh_layer_names() -> Iterator[None]:
    """Keras numbers unnamed layers by a process-wide counter (`conv2d_7`); inside this block
    numbering starts afresh, so a model built here gets the same layer names, and so the same
    cut-point names, in every process and however many models were built before it.

    Keras keeps the counters in its global state (`keras.backend.clear_session` resets them, and
    with them everything else); only the counters are swapped here, and restored afterwards.
    """
    saved = global_state.get_global_attribute(_NAME_COUNTERS)
    global_state.set_global_attribute(_NAME_COUNTERS, collections.defaultdict(int))
    try:
        yield
    finally:
        global_state.set_global_attribute(_NAME_COUNTERS, saved)


def _load_file(ref: str) -> LoadedModel:
    path = Path(ref)
    if not path.is_file():
        raise ModelRefError(f"model file {ref!r} does not exist")
    if path.suffix == ".keras":
        try:
            check_keras_file(path, HEAD_LAYERS, f"model file {ref!r}")
        except ArtifactLoadError as exc:
            raise ModelRefError(str(exc)) from None
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a corrupt or foreign file can fail anywhere in the loader
        raise ModelRefError(f"{ref!r} is not a loadable Keras model: {one_line(exc)}") from None
    if not isinstance(model, keras.Model):
        raise ModelRefError(f"{ref!r} holds a {type(model).__name__}, expected a keras.Model")
    return LoadedModel(
        name=path.name.removesuffix(path.suffix), source=ref, kind="keras", model=model
    )


def _load_saved_model(ref: str, input_shape: Shape) -> LoadedModel:
    layer = None
    for endpoint in _ENDPOINTS:
        try:
            layer = keras.layers.TFSMLayer(ref, call_endpoint=endpoint)
            break
        except Exception:  # a missing endpoint; the next one may exist
            continue
    if layer is None:
        raise ModelRefError(
            f"SavedModel {ref!r} has none of the endpoints {', '.join(_ENDPOINTS)} "
            "(write it with keras.Model.export)"
        )
    inputs = keras.Input(shape=to_internal(input_shape), name="image")
    try:
        outputs = layer(inputs)
    except Exception as exc:  # the SavedModel's signature decides what it accepts
        raise ModelRefError(
            f"SavedModel {ref!r} does not take inputs of shape {input_shape} "
            f"(channels-last {to_internal(input_shape)}): {one_line(exc)}"
        ) from None
    if isinstance(outputs, dict):
        if len(outputs) != 1:
            raise ModelRefError(
                f"SavedModel {ref!r} returns {len(outputs)} outputs; only single-output models "
                "are supported"
            )
        (outputs,) = outputs.values()
    name = Path(ref).name or Path(ref).resolve().name
    model = keras.Model(inputs, outputs, name="saved_model")
    return LoadedModel(name=name, source=ref, kind="savedmodel", model=model)


def _load_callable(ref: str, num_classes: int) -> LoadedModel:
    name, model = call_factory(ref, num_classes, around=fresh_layer_names)
    if not isinstance(model, keras.Model):
        raise wrong_type(ref, model, "keras.Model")
    return LoadedModel(name=name, source=ref, kind="callable", model=model)
