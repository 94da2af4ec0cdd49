"""Memory estimates made before a model is built: refusals name what does not fit."""

from __future__ import annotations

import pytest

from inferedge.core.exits import ExitSpecError, Flatten, Linear
from inferedge.core.resources import (
    ACTIVATION_FACTOR,
    FLOAT_BYTES,
    RECORD_FACTOR,
    head_estimate,
    input_estimate,
    shortfall,
)

GIB = 2**30


def test_the_input_estimate_grows_with_the_shape_and_the_batch() -> None:
    sample = 3 * 32 * 32 * FLOAT_BYTES
    assert input_estimate((3, 32, 32), 1) == sample * (RECORD_FACTOR + ACTIVATION_FACTOR)
    assert input_estimate((3, 32, 32), 8) == sample * (RECORD_FACTOR + 8 * ACTIVATION_FACTOR)
    # An 8k square image cannot be cut and run on a 24 GiB machine; a CIFAR one can.
    assert shortfall(input_estimate((3, 8192, 8192), 1), 24 * GIB, "x") is not None
    assert shortfall(input_estimate((3, 32, 32), 64), 24 * GIB, "x") is None


def test_a_wide_head_on_a_large_activation_is_estimated_by_its_parameters() -> None:
    layers = (Flatten(), Linear(out_features=65536), Linear())
    need = head_estimate(layers, (64, 16, 16), 10, 64, "exit at cut 3")
    weights = 64 * 16 * 16 * 65536 + 65536 + 65536 * 10 + 10
    assert need > 4 * weights * FLOAT_BYTES  # weights, gradients and two Adam moments
    refusal = shortfall(need, 8 * GIB, "spec.exits.head at cut 3")
    assert refusal is not None
    assert refusal.startswith("spec.exits.head at cut 3 needs about 16.")
    assert refusal.endswith("more than the 8.0 GiB this device offers")


def test_a_head_that_does_not_fit_its_exit_is_named_before_any_estimate() -> None:
    with pytest.raises(ExitSpecError, match=r"^exit at cut 3: layer 0 \(linear\) needs a vector"):
        head_estimate((Linear(),), (64, 16, 16), 10, 1, "exit at cut 3")
