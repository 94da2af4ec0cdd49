"""Keras model zoo: three `keras.applications` CNNs, untrained, and one small residual CNN.

`resnet50`, `mobilenet_v2` and `inception_v3` are Keras' own architectures, built with
`weights=None` (nothing is downloaded) and `classifier_activation=None`, so they output logits
as every inferedge model must. Unlike the torch zoo they keep their ImageNet stems at every size:
Keras defines them so, and they need at least 32x32 (Inception-v3: 75x75) inputs.

`small_resnet` is the CIFAR-size model: a four-stage residual CNN of about 60k parameters that
trains on digits in seconds, built like `tests.models:small_resnet` in torch (the same layers,
widths and shapes), so the two frameworks can be compared layer for layer.

Every model is a functional `keras.Model` taking channels-last images; inferedge's C x H x W
input shape is converted by the caller (see `layout`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import layers

from inferedge.core.errors import ModelRefError
from inferedge.dnn.tensorflow.layout import Shape, describe

_RGB = 3


def _small_resnet(num_classes: int, input_shape: Shape, width: int = 16) -> Any:
    def conv(filters: int, stride: int = 1) -> Any:
        # "same" padding keeps the activation where torch's padding=1 puts it, so cut points
        # get the same shapes and costs in both frameworks.
        return layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)

    def stem(x: Any, filters: int, stride: int) -> Any:
        return layers.ReLU()(layers.BatchNormalization()(conv(filters, stride)(x)))

    def block(x: Any, filters: int) -> Any:
        out = layers.ReLU()(layers.BatchNormalization()(conv(filters)(x)))
        out = layers.BatchNormalization()(conv(filters)(out))
        return layers.ReLU()(layers.Add()([out, x]))

    inputs = keras.Input(shape=input_shape, name="image")
    x = block(stem(inputs, width, 1), width)
    x = block(stem(x, 2 * width, 2), 2 * width)
    x = block(stem(x, 2 * width, 2), 2 * width)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="small_resnet")


def _application(
    factory: Callable[..., Any],
) -> Callable[[int, Shape], Any]:
    def build(num_classes: int, input_shape: Shape) -> Any:
        return factory(
            include_top=True,
            weights=None,
            input_shape=input_shape,
            classes=num_classes,
            classifier_activation=None,
        )

    return build


_BUILDERS: dict[str, Callable[[int, Shape], Any]] = {
    "inception_v3": _application(keras.applications.InceptionV3),
    "mobilenet_v2": _application(keras.applications.MobileNetV2),
    "resnet50": _application(keras.applications.ResNet50),
    "small_resnet": _small_resnet,
}

# Smallest side length each model's strides leave a non-empty map for.
_MIN_SIDE = {"inception_v3": 75, "mobilenet_v2": 32, "resnet50": 32, "small_resnet": 4}

ZOO_NAMES: tuple[str, ...] = tuple(sorted(_BUILDERS))


def build_model(name: str, num_classes: int, input_shape: Shape, seed: int = 0) -> Any:
    """Zoo model `name` for C x H x W inputs, its weights drawn from `seed`.

    The `keras.applications` models take 3-channel images; `small_resnet` takes any number of
    channels. Raises `ModelRefError` for an unknown name, a bad class count or an input shape
    the model cannot take.
    """
    if name not in _BUILDERS:
        raise ModelRefError(f"unknown model {name!r} (available: {', '.join(ZOO_NAMES)})")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelRefError(f"num_classes: expected an integer >= 1, got {num_classes!r}")
    if len(input_shape) != 3 or any(d < 1 for d in input_shape):
        raise ModelRefError(
            f"zoo model {name!r} takes images (C, H, W), got input shape {input_shape}"
        )
    channels, height, width = input_shape
    if name != "small_resnet" and channels != _RGB:
        raise ModelRefError(
            f"zoo model {name!r} takes RGB images (3, H, W), "
            f"got input shape {describe(input_shape)}"
        )
    side = _MIN_SIDE[name]
    if min(height, width) < side:
        raise ModelRefError(
            f"zoo model {name!r} needs images of at least {side}x{side}, "
            f"got {describe(input_shape)}"
        )
    # Weights come from Keras' global generators; seeding them makes a model a function of
    # (name, classes, shape, seed).
    keras.utils.set_random_seed(seed)
    return _BUILDERS[name](num_classes, (height, width, channels))
