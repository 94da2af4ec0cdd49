"""A trained Keras backbone's weights on disk: a `.weights.h5` file plus what model it belongs to.

Keras writes the weights (`Model.save_weights`, an HDF5 file of arrays only: loading it runs no
code); inferedge adds one root attribute, `inferedge`, a JSON object naming the model reference,
class count and C x H x W input shape. Loading reads that first, so a file of another model
fails with one line saying how it differs before Keras is asked to match layers.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import keras

from inferedge.core.errors import InferedgeError, one_line
from inferedge.dnn.tensorflow.compat import quiet_variable_export

FORMAT = "inferedge.weights/v1"
SUFFIX = ".weights.h5"
_ATTRIBUTE = "inferedge"


class WeightsError(InferedgeError):
    """A weights file is missing, unreadable, or belongs to another model."""


@dataclass(frozen=True)
class WeightsInfo:
    """The model a weights file belongs to, and the Keras version that wrote it."""

    model_ref: str
    num_classes: int
    input_shape: tuple[int, ...]
    keras_version: str

    def describe(self) -> str:
        """`ref (N classes, CxHxW)`, for messages."""
        shape = "x".join(str(d) for d in self.input_shape)
        return f"{self.model_ref!r} ({self.num_classes} classes, {shape})"


def check_suffix(path: Path) -> None:
    """Keras writes weights only under a name ending in `.weights.h5`; say so in one line."""
    if not path.name.endswith(SUFFIX):
        raise WeightsError(f"{path}: a Keras weights file name must end in {SUFFIX!r}")


def save_weights(
    model: Any,
    path: Path,
    *,
    model_ref: str,
    num_classes: int,
    input_shape: tuple[int, ...],
) -> WeightsInfo:
    """Write `model`'s weights to `path` with its metadata, atomically; return the metadata."""
    check_suffix(path)
    info = WeightsInfo(model_ref, num_classes, tuple(input_shape), str(keras.__version__))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name.removesuffix(SUFFIX)}.partial{SUFFIX}")
    with quiet_variable_export():
        model.save_weights(partial)
    with h5py.File(partial, "a") as f:
        f.attrs[_ATTRIBUTE] = json.dumps(
            {
                "format": FORMAT,
                "model_ref": info.model_ref,
                "num_classes": info.num_classes,
                "input_shape": list(info.input_shape),
                "keras_version": info.keras_version,
            }
        )
    # A reader never sees a half-written file under the final name.
    os.replace(partial, path)
    return info


def read_weights_info(path: Path) -> WeightsInfo:
    """The metadata of the weights file at `path`."""
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get(_ATTRIBUTE)
    except OSError as exc:  # h5py's error for anything that is not HDF5
        raise WeightsError(f"{path}: not a readable weights file ({one_line(exc)})") from None
    try:
        meta = json.loads(raw) if isinstance(raw, str | bytes) else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: not an inferedge weights file (format {FORMAT!r})")
    model_ref = meta.get("model_ref")
    num_classes = meta.get("num_classes")
    input_shape = meta.get("input_shape")
    version = meta.get("keras_version")
    if not (
        isinstance(model_ref, str)
        and isinstance(num_classes, int)
        and isinstance(input_shape, list)
        and all(isinstance(d, int) for d in input_shape)
        and isinstance(version, str)
    ):
        raise WeightsError(f"{path}: malformed inferedge weights file (metadata)")
    return WeightsInfo(model_ref, num_classes, tuple(input_shape), version)


def load_weights(
    model: Any,
    path: Path,
    *,
    model_ref: str,
    num_classes: int,
    input_shape: tuple[int, ...],
) -> WeightsInfo:
    """Load the weights at `path` into `model`, which must be the model the file was saved from.

    Raises `WeightsError` for a missing or foreign file, another model, or layers and shapes
    that do not fit `model` (which may then hold some of the file's weights: discard it).
    """
    info = read_weights_info(path)
    expected = WeightsInfo(model_ref, num_classes, tuple(input_shape), info.keras_version)
    if info != expected:
        raise WeightsError(
            f"{path}: holds weights of model {info.describe()}, not {expected.describe()}"
        )
    with warnings.catch_warnings(record=True) as caught:
        # Keras only warns about some mismatches (a layer missing from the file keeps its
        # fresh weights); a half-loaded model must not pass for a trained one.
        warnings.simplefilter("always", UserWarning)
        try:
            model.load_weights(path)
        except Exception as exc:  # Keras raises ValueError, KeyError or h5py errors
            raise WeightsError(f"{path}: does not fit the model: {one_line(exc)}") from None
    mismatches = [w for w in caught if issubclass(w.category, UserWarning)]
    if mismatches:
        first = str(mismatches[0].message).strip().splitlines()[0]
        raise WeightsError(f"{path}: does not fit the model: {first}")
    return info
