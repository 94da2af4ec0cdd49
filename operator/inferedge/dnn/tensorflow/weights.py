"""A trained Keras backbone's weights on disk: a `.weights.h5` file plus what model it belongs to.

Keras writes the weights (`Model.save_weights`, an HDF5 file of arrays only: loading it runs no
code); inferedge adds one root attribute, `inferedge`, a JSON object naming the model reference,
class count and C x H x W input shape. Loading reads that first, so a file of another model
fails with one line saying how it differs before Keras is asked to match layers.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import h5py
import keras

from inferedge.core.errors import one_line
from inferedge.dnn.tensorflow.compat import quiet_variable_export
from inferedge.dnn.weights import (
    WeightsError,
    WeightsInfo,
    check_belongs,
    parse_metadata,
    read_file,
    write_atomically,
)

# WeightsInfo and WeightsError are the neutral ones; callers of this backend import them here.
__all__ = [
    "SUFFIX",
    "WeightsError",
    "WeightsInfo",
    "check_suffix",
    "load_weights",
    "read_weights_info",
    "save_weights",
]

SUFFIX = ".weights.h5"
_ATTRIBUTE = "inferedge"
_VERSION_KEY = "keras_version"


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

    def write(partial: Path) -> None:
        with quiet_variable_export():
            model.save_weights(partial)
        with h5py.File(partial, "a") as f:
            f.attrs[_ATTRIBUTE] = json.dumps(info.metadata(_VERSION_KEY))

    write_atomically(path, write, SUFFIX)
    return info


def read_weights_info(path: Path) -> WeightsInfo:
    """The metadata of the weights file at `path`."""
    # OSError is h5py's error for anything that is not HDF5.
    raw = read_file(path, _read_attribute, (OSError,))
    try:
        meta = json.loads(raw) if isinstance(raw, str | bytes) else None
    except json.JSONDecodeError:
        meta = None
    return parse_metadata(path, meta, _VERSION_KEY)


def _read_attribute(path: Path) -> object:
    with h5py.File(path, "r") as f:
        return f.attrs.get(_ATTRIBUTE)


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
    check_belongs(path, info, model_ref=model_ref, num_classes=num_classes, input_shape=input_shape)
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
