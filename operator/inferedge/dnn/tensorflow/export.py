"""Export a plan's partitions as `.keras` files, and load them back, verified.

Each part becomes the segment files between its exits plus one file per exit head, listed in the
same `core.manifest.Manifest` the torch backend writes (framework `tensorflow`, format `keras`).
Exit decisions stay in the runtime, as in torch: no threshold is baked into a file, so a
threshold change rolls out without re-exporting anything.

Every file takes and returns tensors in inferedge's layout (C x H x W maps, batch first), the
shapes the manifest records: a `Permute` layer at each end converts to and from the
channels-last layout the Keras layers inside compute in. Files load in Keras' safe mode, and
only after their sha256 matches the manifest.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from inferedge import __version__
from inferedge.core.digest import sha256_file
from inferedge.core.errors import InferedgeError, one_line
from inferedge.core.manifest import ArtifactFile, Calibration, Manifest, Step, part_steps
from inferedge.core.plan import Plan
from inferedge.dnn.tensorflow import exits as _exits  # registers the custom head layers
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
from inferedge.dnn.workflow import ArrayFn, RunnableStep

FORMAT = "keras"
SUFFIX = ".keras"
# The custom layers a head file may hold; safe mode still refuses any code (Lambda layers).
_CUSTOM_OBJECTS = {"AdaptivePool2D": _exits.AdaptivePool2D, "WindowPool2D": _exits.WindowPool2D}


class ArtifactLoadError(InferedgeError):
    """An exported file is missing, corrupted or not a Keras model."""


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


def _write(inner: Any, in_shape: Shape, name: str, out_dir: Path, kind: str) -> ArtifactFile:
    path = out_dir / name
    model = boundary_model(inner, in_shape, path.name.removesuffix(SUFFIX).replace(".", "_"))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_model(model, path)
    except Exception as exc:  # Keras raises many types for layers it cannot serialise
        raise InferedgeError(f"cannot export {name}: {one_line(exc)}") from None
    return ArtifactFile(
        name=name,
        sha256=sha256_file(path),
        size=path.stat().st_size,
        kind=kind,  # type: ignore[arg-type]
        input_shape=in_shape,
        output_shape=tuple(int(d) for d in model.outputs[0].shape[1:]),
    )


def export_partitions(
    graph: CutGraph, plan: Plan, heads: Mapping[int, Any], out_dir: Path
) -> tuple[list[ArtifactFile], dict[str, list[Step]]]:
    """Write every segment and head file of both parts under `out_dir`; return what was written.

    `heads` maps each exit's cut index to its trained head (a model taking channels-last
    activations, as `exits.render_head` builds it).
    """
    files: list[ArtifactFile] = []
    steps: dict[str, list[Step]] = {"edge": [], "cloud": []}
    part: Literal["edge", "cloud"]
    for part in ("edge", "cloud"):
        for start, end, has_exit, final in part_steps(plan, part):
            segment_name = f"{part}/segment_{start}_{end}{SUFFIX}"
            in_shape = graph.cut_points[start].shape
            files.append(
                _write(graph.between(start, end), in_shape, segment_name, out_dir, "segment")
            )
            head_name = None
            if has_exit:
                if end not in heads:
                    raise InferedgeError(f"no trained head for the exit at cut {end}")
                head_name = f"{part}/head_{end}{SUFFIX}"
                files.append(
                    _write(heads[end], graph.cut_points[end].shape, head_name, out_dir, "head")
                )
            steps[part].append(
                Step(start=start, end=end, segment=segment_name, head=head_name, final=final)
            )
    return files, steps


def make_manifest(
    plan: Plan,
    files: list[ArtifactFile],
    steps: dict[str, list[Step]],
    calibration: Calibration | None,
) -> Manifest:
    """The manifest of an exported plan, stamped with the versions that produced it."""
    return Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        plan=plan,
        versions={
            "inferedge": __version__,
            "tensorflow": str(tf.__version__),
            "keras": str(keras.__version__),
            "python": platform.python_version(),
        },
        framework="tensorflow",
        format=FORMAT,
        files=tuple(files),
        edge=tuple(steps["edge"]),
        cloud=tuple(steps["cloud"]),
        calibration=calibration,
    )


def load_part(manifest: Manifest, part: Literal["edge", "cloud"], root: Path) -> list[RunnableStep]:
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
        path = root / name
        if not path.is_file():
            raise ArtifactLoadError(f"artifact {name!r} is missing under {root}")
        expected = files[name].sha256
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactLoadError(
                f"artifact {name!r}: sha256 mismatch (manifest says {expected[:12]}…, "
                f"file has {actual[:12]}…); refusing to load it"
            )
        try:
            model = keras.models.load_model(
                path, compile=False, safe_mode=True, custom_objects=_CUSTOM_OBJECTS
            )
        except Exception as exc:  # a corrupted archive can fail in many ways inside Keras
            raise ArtifactLoadError(f"artifact {name!r}: {one_line(exc)}") from None
        return _array_fn(model, files[name].input_shape, name)

    steps = manifest.edge if part == "edge" else manifest.cloud
    return [
        RunnableStep(s, load(s.segment), load(s.head) if s.head is not None else None)
        for s in steps
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
