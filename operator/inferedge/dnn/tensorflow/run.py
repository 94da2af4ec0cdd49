"""Running Keras models fast and without side effects: compiled inference, taps at cut points.

Calling a Keras model eagerly dispatches every layer from Python; a `tf.function` traced once
per model, with the batch dimension left open, runs the whole graph at once. Inference always
passes `training=False`, so BatchNorm uses (and never updates) its moving statistics and
dropout is off: running a backbone this way cannot change it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from inferedge.dnn.tensorflow.graph import CutGraph
from inferedge.dnn.tensorflow.layout import Shape

TensorFn = Callable[[Any], Any]
"""A compiled model: a batch (numpy or tf.Tensor, channels-last) in, a tf.Tensor out."""

EVAL_BATCH = 256


def compiled(model: Any, in_shape: Shape, dtype: str = "float32") -> TensorFn:
    """`model` in inference mode as a `tf.function` for batches of per-sample `in_shape`.

    The input signature leaves only the batch size open, so the function is traced once.
    """
    signature = [tf.TensorSpec(shape=(None, *in_shape), dtype=dtype)]
    return tf.function(_Inference(model), input_signature=signature)  # type: ignore[no-any-return]


class _Inference:
    """`model(x, training=False)`. An object, not a closure: TensorFlow tells functions apart by
    their code, so closures of one `def` would look like one function "retracing" (and warn)
    each time another model is compiled, although every model is traced once."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def __call__(self, x: Any) -> Any:
        return self._model(x, training=False)


def predict(fn: TensorFn, x: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """`fn` over `x` in batches, as one numpy array."""
    parts = [np.asarray(fn(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0,), dtype=np.float32)


class Taps:
    """Runs a backbone segment by segment and returns its activations at the chosen cuts.

    Cut 0 is the input itself and cut K the model's output. Activations are channels-last numpy
    arrays, computed in inference mode.
    """

    def __init__(self, graph: CutGraph, cuts: Sequence[int]) -> None:
        graph.check_taps(cuts)
        self.cuts = tuple(cuts)
        # One compiled piece per stretch between consecutive requested cuts, not per segment:
        # fewer boundaries, same values.
        stops = sorted({cut for cut in cuts if cut > 0})
        starts = [0, *stops[:-1]]
        self._pieces = [
            (end, compiled(graph.between(start, end), graph.internal_shape(start)))
            for start, end in zip(starts, stops, strict=True)
        ]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """The activations at each cut for a channels-last batch, in the order of the cuts."""
        found = {0: x}
        value: Any = x
        for end, piece in self._pieces:
            value = piece(value)
            found[end] = np.asarray(value)
        return [found[cut] for cut in self.cuts]

    def over(self, x: np.ndarray, batch_size: int = EVAL_BATCH) -> list[np.ndarray]:
        """`self(x)` in batches, concatenated per cut."""
        chunks = [self(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]
