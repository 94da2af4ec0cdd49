"""Declarative exit heads: validation, presets and shape checks (no code, ever)."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from inferedge.core.exits import (
    AdaptivePool,
    Conv2d,
    ExitHeadSpec,
    ExitSpecError,
    Flatten,
    Layer,
    Linear,
    MaxPool,
    ReLU,
    check_head,
    preset_layers,
)

RESNET_CLASSIFIER = (AdaptivePool(mode="avg", output_size=1), Flatten(), Linear())


def test_spec_parses_from_plain_data() -> None:
    spec = ExitHeadSpec.model_validate(
        {
            "layers": [
                {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1},
                {"type": "batchnorm"},
                {"type": "relu"},
                {"type": "adaptive_pool", "mode": "max", "output_size": 2},
                {"type": "flatten"},
                {"type": "dropout", "p": 0.2},
                {"type": "linear"},
            ]
        }
    )
    assert spec.layers is not None
    shapes = check_head(spec.layers, (64, 8, 8), 10, "exit at cut 3")
    assert shapes[-1] == (10,)
    assert shapes[1] == (32, 8, 8)
    assert shapes[5] == (32 * 2 * 2,)


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "lambda", "code": "import os"},
        {"type": "conv2d", "out_channels": 8, "forward": "x"},
        {"type": "conv2d", "out_channels": 0},
        {"type": "maxpool", "kernel_size": 1000},
        {"type": "dropout", "p": 1.0},
        {"type": "linear", "out_features": -3},
    ],
)
def test_only_declared_layers_and_bounded_arguments(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Layer).validate_python(bad)


def test_exactly_one_of_preset_or_layers() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        ExitHeadSpec()
    with pytest.raises(ValidationError, match="exactly one"):
        ExitHeadSpec(preset="sdn", layers=(Flatten(), Linear()))
    with pytest.raises(ValidationError):
        ExitHeadSpec(preset="eval-this")  # type: ignore[arg-type]


def test_kernel_larger_than_the_map_names_exit_layer_and_sizes() -> None:
    layers = (MaxPool(kernel_size=5), Flatten(), Linear())
    with pytest.raises(ExitSpecError) as err:
        check_head(layers, (64, 2, 2), 10, "edge exit at cut 7 (layer3_1_relu_1)")
    assert str(err.value) == (
        "edge exit at cut 7 (layer3_1_relu_1): layer 0 (maxpool) kernel 5 (padding 0) needs a "
        "map of at least 5x5, got 2x2"
    )


def test_linear_needs_a_flatten_first() -> None:
    with pytest.raises(ExitSpecError, match="layer 0 \\(linear\\) needs a vector"):
        check_head((Linear(),), (8, 4, 4), 10, "exit")


def test_head_must_end_in_class_logits() -> None:
    with pytest.raises(ExitSpecError, match="ends in shape 32, expected 10 class logits"):
        check_head((Flatten(), Linear(out_features=32)), (8, 1, 1), 10, "exit")
    with pytest.raises(ExitSpecError, match="needs a CxHxW map, got 128"):
        check_head((Flatten(), Conv2d(out_channels=4)), (8, 4, 4), 10, "exit")


def test_presets() -> None:
    assert preset_layers("minimal", (64, 8, 8), ()) == RESNET_CLASSIFIER
    assert preset_layers("minimal", (64,), ()) == (Flatten(), Linear())
    sdn = preset_layers("sdn", (64, 16, 16), ())
    assert sdn[0] == AdaptivePool(mode="mixed", output_size=4)
    assert preset_layers("sdn", (64, 2, 2), ())[0] == AdaptivePool(mode="mixed", output_size=2)
    assert preset_layers("replicate-classifier", (64, 8, 8), RESNET_CLASSIFIER) == (
        RESNET_CLASSIFIER
    )
    with pytest.raises(ExitSpecError, match="replicate-classifier"):
        preset_layers("replicate-classifier", (64, 8, 8), ())
    for preset in ("minimal", "sdn"):
        layers = preset_layers(preset, (48, 5, 7), ())  # type: ignore[arg-type]
        assert check_head(layers, (48, 5, 7), 3, "exit")[-1] == (3,)


def test_relu_and_batchnorm_keep_shapes() -> None:
    shapes = check_head((ReLU(), Flatten(), Linear()), (4, 3, 3), 2, "exit")
    assert shapes[1] == (4, 3, 3)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "expected"),
    [(5, 2, 2, 0, 3), (4, 2, 2, 0, 2), (1, 2, 2, 1, 1), (7, 3, 2, 1, 4), (6, 3, 2, 1, 4)],
)
def test_ceil_mode_pools_round_up_like_torch(
    size: int, kernel: int, stride: int, padding: int, expected: int
) -> None:
    pool = MaxPool(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=True)
    shapes = check_head((pool, Flatten(), Linear()), (2, size, size), 3, "exit")
    assert shapes[1] == (2, expected, expected)
