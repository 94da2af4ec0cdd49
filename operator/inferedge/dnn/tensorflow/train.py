"""Training in Keras: the backbone on its own, then the exit heads on the frozen backbone.

The schedule is the torch backend's: Adam on cross-entropy, the learning rate decayed along a
cosine over the epoch budget (one value per epoch), shuffled batches from a generator seeded by
`seed` (a trailing batch of one sample dropped: BatchNorm cannot normalise it), early stopping
when the validation metric has not improved for `patience` epochs, and the best epoch's weights
restored at the end. Each step is one `tf.function`, so an epoch costs the model's own work.

Exit training never updates the backbone: the backbone only ever runs with `training=False`
(BatchNorm reads its moving statistics and never writes them) and none of its variables reach
the optimizer or the gradient tape, so every one of its weights and statistics is bit-identical
afterwards. That also makes it a fixed function, so its activations at the exit cuts are
computed once and cached when they fit in `cache_limit_bytes`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from inferedge.core.errors import InferedgeError
from inferedge.core.progress import ProgressCallback
from inferedge.dnn.data import Dataset, Splits
from inferedge.dnn.tensorflow.graph import CutGraph
from inferedge.dnn.tensorflow.layout import batch_to_internal
from inferedge.dnn.tensorflow.run import EVAL_BATCH, Taps, compiled, predict
from inferedge.dnn.training import (
    EarlyStopping,
    ExitInputs,
    ExitTrainResult,
    Loop,
    TrainingRun,
    TrainResult,
    cache_fits,
    mean_scores,
)

DEFAULT_CACHE_LIMIT_BYTES = 2 * 1024**3


def train_backbone(
    model: Any,
    splits: Splits,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    patience: int = 5,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train a Keras `model` (channels-last inputs) with Adam, early-stopping on validation
    accuracy (ties to the lower validation loss).

    The model ends holding the best epoch's weights. `progress(done, total)` is called after
    every batch, with total = epochs x batches per epoch, and with (total, total) at the end.
    """
    run = TrainingRun(
        epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, progress=progress
    )
    keras.utils.set_random_seed(seed)
    x, y = _arrays(splits.train)
    in_shape = tuple(int(d) for d in x.shape[1:])
    variables = list(model.trainable_variables)
    if not variables:
        raise InferedgeError(f"training: model {model.name!r} has no trainable weights")
    optimizer = keras.optimizers.Adam(learning_rate=lr)
    optimizer.build(variables)

    def step(images: Any, labels: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = _mean_loss(model(images, training=True), labels)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    train_step = tf.function(step, input_signature=[_images(in_shape), _labels()])
    infer = compiled(model, in_shape)
    best = _early_stopping([model], patience)
    shuffle = np.random.default_rng(seed)
    loop = Loop(
        shuffle=shuffle.permutation,
        train_step=lambda index: float(train_step(x[index], y[index])),
        validate=lambda: _evaluate(infer, splits.val),
        test=lambda: _evaluate(infer, splits.test)[1],
        begin_epoch=_cosine_schedule(optimizer, run),
    )
    return run.backbone(loop, best, len(y))


def train_exits(
    graph: CutGraph,
    heads: Sequence[tuple[int, Any]],
    splits: Splits,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    patience: int = 5,
    progress: ProgressCallback | None = None,
    cache_limit_bytes: int = DEFAULT_CACHE_LIMIT_BYTES,
) -> ExitTrainResult:
    """Train the exit heads, `(cut index, head)` pairs, jointly on the frozen backbone.

    The loss is the sum of the heads' cross-entropies; early stopping watches the summed
    validation loss. The backbone's weights and BatchNorm statistics are bit-identical
    afterwards; the heads hold the best epoch's weights. `progress` as in `train_backbone`.
    """
    run = TrainingRun(
        epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, progress=progress
    )
    if not heads:
        raise InferedgeError("exit training needs at least one exit head")
    keras.utils.set_random_seed(seed)
    models = [head for _, head in heads]
    cuts = [cut for cut, _ in heads]
    variables = [v for head in models for v in head.trainable_variables]
    optimizer = keras.optimizers.Adam(learning_rate=lr)
    optimizer.build(variables)

    def step(activations: Any, labels: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = tf.add_n(
                [
                    _mean_loss(head(a, training=True), labels)
                    for head, a in zip(models, activations, strict=True)
                ]
            )
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    shapes = [graph.internal_shape(cut) for cut in cuts]
    images = tuple(_images(shape) for shape in shapes)
    train_step = tf.function(step, input_signature=[images, _labels()])
    infer = [compiled(head, shape) for head, shape in zip(models, shapes, strict=True)]
    inputs = _exit_inputs(graph, cuts, splits, cache_limit_bytes)
    best = _early_stopping(models, patience)
    shuffle = np.random.default_rng(seed)
    loop = Loop(
        shuffle=shuffle.permutation,
        train_step=lambda index: float(train_step(*inputs.batch("train", index))),
        validate=lambda: _evaluate_heads(infer, inputs, "val"),
        test=lambda: _evaluate_heads(infer, inputs, "test")[1],
        begin_epoch=_cosine_schedule(optimizer, run),
    )
    return run.exits(loop, best, inputs.size("train"), cached=inputs.cached)


def _cosine_schedule(optimizer: Any, run: TrainingRun) -> Callable[[int], None]:
    """Sets the learning rate of each (1-based) epoch before its batches."""

    def begin_epoch(epoch: int) -> None:
        optimizer.learning_rate = _cosine(run.lr, epoch, run.epochs)

    return begin_epoch


def _cosine(lr: float, epoch: int, epochs: int) -> float:
    """torch's CosineAnnealingLR (to 0 over `epochs`) for 1-based `epoch`."""
    return lr * (1 + math.cos(math.pi * (epoch - 1) / epochs)) / 2


def _images(shape: tuple[int, ...]) -> Any:
    return tf.TensorSpec(shape=(None, *shape), dtype=tf.float32)


def _labels() -> Any:
    return tf.TensorSpec(shape=(None,), dtype=tf.int64)


def _mean_loss(logits: Any, labels: Any) -> Any:
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )


def _arrays(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    return batch_to_internal(ds.x), ds.y


def _early_stopping(models: Sequence[Any], patience: int) -> EarlyStopping[list[Any]]:
    def restore(weights: list[Any]) -> None:
        for model, w in zip(models, weights, strict=True):
            model.set_weights(w)

    return EarlyStopping(lambda: [m.get_weights() for m in models], restore, patience)


def _scores(logits: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
    """Summed cross-entropy (float64) and the number of correct predictions."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = float(-log_p[np.arange(len(labels)), labels].sum())
    return loss, int((logits.argmax(axis=1) == labels).sum())


def _evaluate(infer: Any, ds: Dataset) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a compiled model on `ds`."""
    loss, correct = _scores(predict(infer, batch_to_internal(ds.x)), ds.y)
    return loss / len(ds), correct / len(ds)


def _exit_inputs(
    graph: CutGraph, cuts: list[int], splits: Splits, cache_limit_bytes: int
) -> ExitInputs[np.ndarray]:
    taps = Taps(graph, cuts)
    samples = sum(len(ds) for _, ds in splits.named())
    return ExitInputs(
        {name: _arrays(ds) for name, ds in splits.named()},
        taps,
        taps.over,
        cached=cache_fits(graph.cut_points, cuts, samples, cache_limit_bytes),
    )


def _evaluate_heads(
    heads: Sequence[Any], inputs: ExitInputs[np.ndarray], split: str
) -> tuple[float, tuple[float, ...]]:
    """Mean summed cross-entropy of the compiled heads on `split`, and each one's accuracy."""

    def scores(batch: slice) -> list[tuple[float, int]]:
        activations, labels = inputs.batch(split, np.arange(batch.start, batch.stop))
        return [
            _scores(np.asarray(head(a)), labels) for head, a in zip(heads, activations, strict=True)
        ]

    return mean_scores(inputs.size(split), EVAL_BATCH, scores)
