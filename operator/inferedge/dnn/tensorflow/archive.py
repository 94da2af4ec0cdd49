"""Check a `.keras` archive's configuration before Keras builds anything from it.

Keras' safe mode refuses `Lambda` layers, but a configuration still names the classes Keras
instantiates by module and name, and some of those act on load (`TFSMLayer` loads a SavedModel
from a path, wrapper layers hold foreign framework code; earlier Keras versions could even be
pointed at utility functions such as `get_file`). Every object the configuration names must
therefore be a class from one of a few public Keras modules (layers, initializers,
regularizers, constraints, the model classes) or one of inferedge's registered head layers, and
never one of the layers that load or wrap code. Weights live in `model.weights.h5`, which holds
arrays only.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import keras

from inferedge.core.errors import one_line
from inferedge.dnn.artifacts import json_objects
from inferedge.dnn.protocols import ArtifactLoadError

_MODULES: Final[Mapping[str, Any]] = {
    "keras": keras,
    "keras.layers": keras.layers,
    "keras.initializers": keras.initializers,
    "keras.regularizers": keras.regularizers,
    "keras.constraints": keras.constraints,
    "keras.src.models.functional": keras.src.models.functional,
    "keras.src.models.sequential": keras.src.models.sequential,
    "keras.models": keras.models,
}
_REFUSED: Final = frozenset(
    {"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer", "Layer", "Model"}
)
# Keras refers to the tensors between layers by this pseudo class, with no module.
_TENSOR_REFERENCE: Final = "__keras_tensor__"


def check_keras_file(path: Path, registered: Mapping[str, type], label: str) -> None:
    """Refuse, in one `ArtifactLoadError` line starting with `label`, a `.keras` file whose
    configuration names anything but plain Keras classes or the classes in `registered` (by
    registered name, e.g. `inferedge>AdaptivePool2D`)."""
    name = label
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, RecursionError, zipfile.BadZipFile) as exc:
        raise ArtifactLoadError(f"{name}: not a .keras archive: {one_line(exc)}") from None
    for entry in json_objects(config):
        if "class_name" in entry:
            _check_entry(entry, registered, name)


def _check_entry(entry: Mapping[str, Any], registered: Mapping[str, type], name: str) -> None:
    class_name, module = entry.get("class_name"), entry.get("module")
    registered_name = entry.get("registered_name")
    if class_name == _TENSOR_REFERENCE and module is None:
        return
    head = registered.get(registered_name) if isinstance(registered_name, str) else None
    if head is not None and class_name == head.__name__:
        return
    found = getattr(_MODULES.get(str(module)), str(class_name), None)
    plain = registered_name in (None, class_name)
    if class_name in _REFUSED or not isinstance(found, type) or not plain:
        shown = f"{module}.{class_name}" if module else str(class_name)
        raise ArtifactLoadError(
            f"{name}: the model names {shown[:120]!r}; only Keras' own layers, initializers, "
            "regularizers and constraints and inferedge's head layers are loaded"
        )
