"""Exit heads in Keras: spec layers rendered, shape errors, custom pools, the classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from inferedge.core.exits import (
    AdaptivePool,
    BatchNorm,
    Dropout,
    ExitHeadSpec,
    ExitSpecError,
    Flatten,
    Linear,
    MaxPool,
    ReLU,
    check_head,
)
from inferedge.dnn.tensorflow.backend import prepare
from inferedge.dnn.tensorflow.exits import (
    AdaptivePool2D,
    WindowPool2D,
    classifier_layers,
    render_head,
    resolve_layers,
)
from inferedge.dnn.tensorflow.export import save_model
from inferedge.dnn.tensorflow.graph import build_cut_graph
from inferedge.dnn.tensorflow.layout import to_boundary, to_internal
from tests.dnn.backend_cases import HEADS, LAYERS, head_layers


def _random(shape: tuple[int, ...], n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


@pytest.mark.parametrize("name", HEADS)
def test_rendered_head_follows_the_checked_shapes(name: str) -> None:
    in_shape, spec = head_layers(name)
    shapes = check_head(spec, in_shape, 10, name)
    head = render_head(spec, in_shape, 10, name)
    # The head takes the activation as the backbone holds it: channels-last.
    assert tuple(head.inputs[0].shape[1:]) == to_internal(in_shape)
    out = np.asarray(head(_random(to_internal(in_shape)), training=False))
    assert out.shape == (3, 10)
    assert np.isfinite(out).all()
    # Each spec layer's output, seen in C x H x W, is what the core computed for it.
    seen = [to_boundary(tuple(layer.output.shape[1:])) for layer in head.layers[1:]]
    for expected in shapes[1:]:
        assert expected in seen


def test_render_rejects_a_head_that_does_not_fit_with_the_cores_message() -> None:
    spec = LAYERS.validate_python([{"type": "conv2d", "out_channels": 4, "kernel_size": 5}])
    with pytest.raises(ExitSpecError) as keras_error:
        render_head(spec, (8, 3, 3), 10, "edge exit at cut 2")
    with pytest.raises(ExitSpecError) as core_error:
        check_head(spec, (8, 3, 3), 10, "edge exit at cut 2")
    assert str(keras_error.value) == str(core_error.value)
    assert str(keras_error.value).startswith("edge exit at cut 2: layer 0 (conv2d) kernel 5")

    no_logits = (Flatten(),)
    with pytest.raises(ExitSpecError, match=r"ends in shape 72, expected 10 class logits"):
        render_head(no_logits, (8, 3, 3), 10, "exit")


def test_adaptive_pool_uses_torch_bins_and_mixed_blends_max_and_average() -> None:
    x = np.arange(2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3)
    x = np.random.default_rng(0).permutation(x.ravel()).reshape(x.shape)
    # torch's bins for 5 -> 2 overlap: rows 0..2 and 2..4.
    bins = [(0, 3), (2, 5)]
    expected_avg = np.stack(
        [np.stack([x[:, a:b, c:d].mean(axis=(1, 2)) for c, d in bins], 1) for a, b in bins], 1
    )
    expected_max = np.stack(
        [np.stack([x[:, a:b, c:d].max(axis=(1, 2)) for c, d in bins], 1) for a, b in bins], 1
    )
    np.testing.assert_allclose(AdaptivePool2D(2, "avg")(x), expected_avg, rtol=1e-6)
    np.testing.assert_allclose(AdaptivePool2D(2, "max")(x), expected_max, rtol=1e-6)

    mixed = AdaptivePool2D(2, "mixed")
    np.testing.assert_allclose(mixed(x), (expected_avg + expected_max) / 2, rtol=1e-6)
    assert [w.name for w in mixed.trainable_weights] == ["blend"]
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(mixed(x))
    gradient = tape.gradient(total, mixed.trainable_weights[0].value)
    assert float(gradient) != 0.0


def test_window_pool_counts_padding_like_torch_and_never_lets_it_win() -> None:
    x = -np.ones((1, 3, 3, 1), dtype=np.float32)
    # Max over windows that hang into the -inf padding is still -1.
    maxed = np.asarray(WindowPool2D("max", 2, 2, padding=1)(x))
    assert maxed.shape == (1, 2, 2, 1)
    assert (maxed == -1).all()
    # Average of 3x3 windows with padding 1: the corner window sees 4 of 9 real values.
    averaged = np.asarray(WindowPool2D("avg", 3, 2, padding=1)(x))
    assert averaged[0, 0, 0, 0] == pytest.approx(-4 / 9)
    # Ceil mode adds a last window beyond the padding, divided by its area inside the padding.
    ceil = np.asarray(WindowPool2D("avg", 2, 2, padding=0, ceil_mode=True)(x))
    assert ceil.shape == (1, 2, 2, 1)
    assert ceil[0, 1, 1, 0] == pytest.approx(-1.0)


def test_custom_layers_survive_saving(tmp_path: Path) -> None:
    spec = LAYERS.validate_python(HEADS["ceil-pools"][1] + [])
    in_shape = HEADS["ceil-pools"][0]
    head = render_head(spec, in_shape, 10)
    mixed = render_head(LAYERS.validate_python(HEADS["uneven-bins"][1]), (5, 7, 7), 10)
    for model, shape in ((head, in_shape), (mixed, (5, 7, 7))):
        path = tmp_path / f"{model.name}_{len(model.layers)}.keras"
        save_model(model, path)
        loaded = keras.models.load_model(path, compile=False, safe_mode=True)
        x = _random(to_internal(shape))
        np.testing.assert_array_equal(loaded(x), model(x))


def test_classifier_of_zoo_models() -> None:
    pooled = (AdaptivePool(mode="avg", output_size=1), Flatten(), Linear())
    for name, shape in (("small_resnet", (3, 16, 16)), ("resnet50", (3, 32, 32))):
        _, graph = prepare(name, 10, shape)
        assert classifier_layers(graph) == pooled, name


def test_classifier_of_a_sequential_model_keeps_its_hidden_layer() -> None:
    _, graph = prepare("tests.dnn.tensorflow.models:plain_cnn", 10, (3, 16, 16))
    assert classifier_layers(graph) == (
        MaxPool(kernel_size=2, stride=2),
        Flatten(),
        Linear(out_features=32),
        ReLU(),
        Dropout(p=0.25),
        Linear(),
    )


def _with_tail(*tail: Any) -> Any:
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same")(inputs)
    for layer in tail:
        x = layer(x)
    return keras.Model(inputs, x)


def test_classifier_with_a_dense_relu_and_a_batchnorm() -> None:
    model = _with_tail(
        layers.GlobalMaxPooling2D(),
        layers.Dense(12, activation="relu"),
        layers.BatchNormalization(),
        layers.Dense(10),
    )
    graph = build_cut_graph(model, (3, 8, 8), name="tail")
    assert classifier_layers(graph) == (
        AdaptivePool(mode="max", output_size=1),
        Flatten(),
        Linear(out_features=12),
        ReLU(),
        BatchNorm(),
        Linear(),
    )


def test_classifier_that_cannot_be_expressed_is_empty_and_the_preset_says_so() -> None:
    model = _with_tail(
        layers.GlobalAveragePooling2D(), layers.ReLU(max_value=6.0), layers.Dense(10)
    )
    graph = build_cut_graph(model, (3, 8, 8), name="relu6")
    assert classifier_layers(graph) == ()
    with pytest.raises(ExitSpecError, match=r"replicate-classifier: the backbone's classifier"):
        resolve_layers(ExitHeadSpec(preset="replicate-classifier"), (4, 8, 8), graph)


def test_resolve_layers_presets_and_explicit() -> None:
    _, graph = prepare("small_resnet", 10, (3, 16, 16))
    sdn = resolve_layers(ExitHeadSpec(preset="sdn"), (16, 16, 16), graph)
    assert sdn == (AdaptivePool(mode="mixed", output_size=4), Flatten(), Linear())
    minimal = resolve_layers(ExitHeadSpec(preset="minimal"), (16, 16, 16), graph)
    assert minimal == (AdaptivePool(mode="avg", output_size=1), Flatten(), Linear())
    replicate = resolve_layers(ExitHeadSpec(preset="replicate-classifier"), (16, 16, 16), graph)
    assert replicate == minimal
    explicit = (Flatten(), Linear())
    assert resolve_layers(ExitHeadSpec(layers=explicit), (16, 16, 16), graph) == explicit
