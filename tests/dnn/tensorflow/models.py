"""Small Keras models for tests, loaded the way users load theirs:
`tests.dnn.tensorflow.models:NAME`.

Each one exercises one way a user's model reaches the cut graph: a `Sequential` built only when
inferedge calls it, nested blocks to inline, an input of unknown size, and the shapes inferedge
must refuse.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers


def plain_cnn(num_classes: int = 10) -> Any:
    """Conv, pool, conv, BatchNorm, pool, two dense layers: a `Sequential` with no input shape.

    `test_parity.plain_cnn_torch` is the same network in torch.
    """
    return keras.Sequential(
        [
            layers.Conv2D(8, 3, padding="same"),
            layers.ReLU(),
            layers.MaxPooling2D(2),
            layers.Conv2D(16, 3, padding="same"),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(32),
            layers.ReLU(),
            layers.Dropout(0.25),
            layers.Dense(num_classes),
        ]
    )


def nested_blocks(num_classes: int = 10) -> Any:
    """A functional model whose stages are nested models (a Sequential and a functional block)."""
    stem = keras.Sequential(
        [
            layers.Conv2D(8, 3, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
        ],
        name="stem",
    )
    block_in = keras.Input(shape=(16, 16, 8))
    branch = layers.Conv2D(8, 3, padding="same")(block_in)
    block = keras.Model(block_in, layers.ReLU()(layers.Add()([block_in, branch])), name="block")
    inputs = keras.Input(shape=(16, 16, 3))
    x = block(stem(inputs))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes)(x), name="nested_blocks")


def flexible_cnn(num_classes: int = 10) -> Any:
    """A functional model that takes images of any size, so its own graph has unknown shapes."""
    inputs = keras.Input(shape=(None, None, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.GlobalMaxPooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes)(x))


def softmax_cnn(num_classes: int = 10) -> Any:
    """A model that ends in a softmax, as Keras examples often do: not logits."""
    inputs = keras.Input(shape=(16, 16, 3))
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(inputs))
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))


def two_inputs(num_classes: int = 10) -> Any:
    """A model with two inputs, which cannot be cut by shipping one tensor."""
    a = keras.Input(shape=(16, 16, 3))
    b = keras.Input(shape=(16, 16, 3))
    x = layers.GlobalAveragePooling2D()(layers.Add()([a, b]))
    return keras.Model([a, b], layers.Dense(num_classes)(x))


class _Subclassed(keras.Model):  # type: ignore[misc]
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.pool = layers.GlobalAveragePooling2D()
        self.dense = layers.Dense(num_classes)

    def call(self, x: Any) -> Any:
        return self.dense(self.pool(x))


def subclassed(num_classes: int = 10) -> Any:
    """A subclassed model: Keras records no layer graph for it."""
    return _Subclassed(num_classes)


class _PlusZero(layers.Layer):  # type: ignore[misc]
    """Adds 0 x a trainable scalar: a weight whose gradient is always zero."""

    def build(self, input_shape: Any) -> None:
        self.scale = self.add_weight(shape=(), initializer="zeros")

    def call(self, x: Any) -> Any:
        return x + 0.0 * self.scale


def stuck(num_classes: int = 10) -> Any:
    """A model training cannot change: its only trainable weight has zero gradient."""
    inputs = keras.Input(shape=(16, 16, 3))
    x = layers.Dense(num_classes, trainable=False)(layers.Flatten()(inputs))
    return keras.Model(inputs, _PlusZero()(x))


def fixed_batch(num_classes: int = 10) -> Any:
    """A model that only runs on batches of one: it flattens the batch into one row."""
    inputs = keras.Input(shape=(16, 16, 3), batch_size=1)
    x = layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.ops.reshape(x, (1, -1))  # a Keras op in the graph, not a layer
    return keras.Model(inputs, layers.Dense(num_classes)(x), name="fixed_batch")


def clashing_blocks(num_classes: int = 10) -> Any:
    """Two nested blocks whose layers share a name, as blocks loaded from two files can."""

    def block(name: str) -> Any:
        inputs = keras.Input(shape=(16, 16, 3))
        return keras.Model(inputs, layers.ReLU(name="act")(inputs), name=name)

    inputs = keras.Input(shape=(16, 16, 3))
    x = block("second")(block("first")(inputs))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes)(x), name="clashing_blocks")
