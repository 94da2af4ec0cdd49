"""Crafted payloads in `.keras` files (served parts, heads, a user's model.uri): nothing runs.

As for torch (tests/dnn/test_crafted_payloads.py): each payload would touch a marker file; the
file is refused in one line before Keras builds anything, and the marker stays untouched.
"""

from __future__ import annotations

import contextlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import pytest
from keras import layers

from inferedge.core.errors import ModelRefError
from inferedge.dnn.protocols import ArtifactLoadError
from inferedge.dnn.tensorflow.archive import check_keras_file
from inferedge.dnn.tensorflow.exits import HEAD_LAYERS
from inferedge.dnn.tensorflow.loader import load_model


def _touch(marker: str) -> Callable[[Any], Any]:
    # Keras stores a lambda's bytecode, not its closure: the path must be a constant in it.
    code = f"lambda x: (__import__('pathlib').Path({marker!r}).touch(), x)[1]"
    run: Callable[[Any], Any] = eval(code)
    return run


def _model_file(path: Path, marker: Path | None = None) -> Path:
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, activation="relu")(inputs)
    if marker is not None:
        x = layers.Lambda(_touch(str(marker)))(x)
    x = layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, layers.Dense(2)(x)).save(path)
    return path


def _with_config(source: Path, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            new.writestr(info.filename, data)
    return target


def _first_layer(config: dict[str, Any]) -> dict[str, Any]:
    layer: dict[str, Any] = config["config"]["layers"][1]
    return layer


PAYLOADS: dict[str, Callable[[dict[str, Any]], None]] = {
    "a module of Python's own": lambda c: _first_layer(c).update(
        module="os", class_name="system", registered_name=None
    ),
    "a Keras function that downloads": lambda c: _first_layer(c).update(
        module="keras.src.utils.file_utils", class_name="get_file", registered_name=None
    ),
    "a layer that loads a SavedModel": lambda c: _first_layer(c).update(
        module="keras.layers", class_name="TFSMLayer", registered_name=None
    ),
    "a foreign registered name": lambda c: _first_layer(c).update(
        registered_name="attacker>Conv2D"
    ),
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model_file(tmp_path_factory.mktemp("keras") / "clean.keras")


def test_the_clean_file_passes_the_check(clean: Path) -> None:
    check_keras_file(clean, HEAD_LAYERS, "clean.keras")


@pytest.mark.parametrize("payload", PAYLOADS, ids=list(PAYLOADS))
def test_a_crafted_configuration_is_refused(clean: Path, tmp_path: Path, payload: str) -> None:
    crafted = _with_config(clean, tmp_path / "crafted.keras", PAYLOADS[payload])
    with pytest.raises(ArtifactLoadError, match=r"^crafted\.keras: the model names ") as err:
        check_keras_file(crafted, HEAD_LAYERS, "crafted.keras")
    assert "\n" not in str(err.value)
    with pytest.raises(ModelRefError, match="the model names "):
        load_model(str(crafted), 2, (3, 8, 8))


def test_a_lambda_layer_is_refused_before_keras_sees_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    crafted = _model_file(tmp_path / "lambda.keras", marker)
    marker.unlink(missing_ok=True)  # building the model to save it ran the lambda once
    with pytest.raises(ModelRefError, match=r"names 'keras\.layers\.Lambda'"):
        load_model(str(crafted), 2, (3, 8, 8))
    assert not marker.exists()
    # The control: without safe mode, Keras would run the stored code while loading.
    with contextlib.suppress(Exception):
        keras.models.load_model(crafted, compile=False, safe_mode=False)
    assert marker.exists()
