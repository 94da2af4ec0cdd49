"""Export a plan's partitions as `.keras` files, and load them back, verified.

Which files a plan becomes, the manifest listing them (framework `tensorflow`, format `keras`)
and the checks before a file is loaded are `inferedge.dnn.artifacts`', as for torch.

Every file takes and returns tensors in inferedge's layout (C x H x W maps, batch first), the
shapes the manifest records: a `Permute` layer at each end converts to and from the
channels-last layout the Keras layers inside compute in. Files load in Keras' safe mode, and
only after their sha256 matches the manifest and their configuration names nothing but Keras'
own classes and the head layers (`archive`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from inferedge.core.errors import InferedgeError, one_line
from inferedge.core.manifest import ArtifactFile, Calibration, Manifest, Step
from inferedge.core.plan import Plan
from inferedge.core.roles import Role
from inferedge.dnn.artifacts import (
    Kind,
    build_manifest,
    describe_file,
    export_parts,
    load_steps,
    verified_path,
)
from inferedge.dnn.protocols import ArrayFn, ArtifactLoadError, RunnableStep
from inferedge.dnn.tensorflow import exits as _exits  # registers the custom head layers
from inferedge.dnn.tensorflow.archive import check_keras_file
from inferedge.dnn.tensorflow.compat import quiet_variable_export
from inferedge.dnn.tensorflow.graph import CutGraph
from inferedge.dnn.tensorflow.layout import (
    TO_CHANNELS_FIRST,
    TO_CHANNELS_LAST,
    Shape,
    describe,
    is_image,
)
from inferedge.dnn.tensorflow.run import compiled

FORMAT = "keras"
SUFFIX = ".keras"
# The custom layers a head file may hold; safe mode still refuses any code (Lambda layers).
_CUSTOM_OBJECTS = {"AdaptivePool2D": _exits.AdaptivePool2D, "WindowPool2D": _exits.WindowPool2D}


def boundary_model(inner: Any, in_shape: Shape, name: str) -> Any:
    """`inner` (channels-last inside) as a model taking and returning inferedge's layout.

    `in_shape` is the per-sample input shape in inferedge's layout (C x H x W for maps).
    """
    inputs = keras.Input(shape=in_shape, name="activation")
    x = layers.Permute(TO_CHANNELS_LAST)(inputs) if is_image(in_shape) else inputs
    y = inner(x)
    if is_image(tuple(y.shape[1:])):
        y = layers.Permute(TO_CHANNELS_FIRST)(y)
    return keras.Model(inputs, y, name=name)


def save_model(model: Any, path: Path) -> None:
    """`model.save(path)`, without Keras' numpy 2 warnings (see `compat`)."""
    with quiet_variable_export():
        model.save(path)


def export_partitions(
    graph: CutGraph, plan: Plan, heads: Mapping[int, Any], out_dir: Path
) -> tuple[list[ArtifactFile], dict[str, list[Step]]]:
    """Write every segment and head file of both parts under `out_dir`; return what was written.

    `heads` maps each exit's cut index to its trained head (a model taking channels-last
    activations, as `exits.render_head` builds it).
    """

    def write(inner: Any, in_shape: Shape, name: str, kind: Kind) -> ArtifactFile:
        path = out_dir / name
        model = boundary_model(inner, in_shape, path.name.removesuffix(SUFFIX).replace(".", "_"))
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            save_model(model, path)
        except Exception as exc:  # Keras raises many types for layers it cannot serialise
            raise InferedgeError(f"cannot export {name}: {one_line(exc)}") from None
        out_shape = tuple(int(d) for d in model.outputs[0].shape[1:])
        return describe_file(path, name, kind, in_shape, out_shape)

    return export_parts(plan, graph.cut_points, graph.between, heads, write, suffix=SUFFIX)


def make_manifest(
    plan: Plan,
    files: list[ArtifactFile],
    steps: dict[str, list[Step]],
    calibration: Calibration | None,
) -> Manifest:
    """The manifest of an exported plan, stamped with the versions that produced it."""
    return build_manifest(
        plan,
        files,
        steps,
        calibration,
        framework="tensorflow",
        file_format=FORMAT,
        framework_versions={"tensorflow": str(tf.__version__), "keras": str(keras.__version__)},
    )


def load_part(
    manifest: Manifest, part: Role, root: Path, *, whole_chain: bool = False
) -> list[RunnableStep]:
    """Load a part's files from `root`, refusing any file whose sha256 differs from the manifest.

    Each step's callables take and return float32 numpy batches of the shapes the manifest
    records for its files.
    """
    if manifest.framework != "tensorflow":
        raise ArtifactLoadError(
            f"the manifest's files are for {manifest.framework}, not tensorflow"
        )
    files = {f.name: f for f in manifest.files}

    def load(name: str) -> ArrayFn:
        path = verified_path(root, name, files[name].sha256)
        check_keras_file(path, _exits.HEAD_LAYERS, f"artifact {name!r}")
        try:
            model = keras.models.load_model(
                path, compile=False, safe_mode=True, custom_objects=_CUSTOM_OBJECTS
            )
        except Exception as exc:  # a corrupted archive can fail in many ways inside Keras
            raise ArtifactLoadError(f"artifact {name!r}: {one_line(exc)}") from None
        return _array_fn(model, files[name].input_shape, name)

    return [
        RunnableStep(*loaded)
        for loaded in load_steps(manifest, part, load, whole_chain=whole_chain)
    ]


def _array_fn(model: Any, in_shape: Shape, name: str) -> ArrayFn:
    fn = compiled(model, in_shape)

    def run(x: np.ndarray) -> np.ndarray:
        if x.ndim != len(in_shape) + 1 or tuple(x.shape[1:]) != tuple(in_shape):
            raise InferedgeError(
                f"{name}: expected a batch of shape N x {describe(in_shape)}, got "
                f"{describe(tuple(x.shape))}"
            )
        return np.asarray(fn(np.asarray(x, dtype=np.float32)), dtype=np.float32)

    return run
