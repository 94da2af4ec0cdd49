"""A trained backbone's weights file, as every backend describes it.

Beside the weights, a file records the model they belong to (reference, class count, C x H x W
input shape) and the framework version that wrote them, under `FORMAT`. Each backend stores
that metadata its own way (torch in the saved dict, Keras as an HDF5 attribute); writing
atomically, reading the metadata back and checking that a file belongs to a model are shared,
so a file of another model fails with the same one line in every framework.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from inferedge.core.errors import InferedgeError, one_line
from inferedge.core.plan import Plan

_Read = TypeVar("_Read")

FORMAT = "inferedge.weights/v1"


class WeightsError(InferedgeError):
    """A weights file is missing, unreadable, or belongs to another model."""


@dataclass(frozen=True)
class WeightsInfo:
    """The model a weights file belongs to, and the version of the framework that wrote it."""

    model_ref: str
    num_classes: int
    input_shape: tuple[int, ...]
    framework_version: str

    def describe(self) -> str:
        """`ref (N classes, CxHxW)`, for messages."""
        shape = "x".join(str(d) for d in self.input_shape)
        return f"{self.model_ref!r} ({self.num_classes} classes, {shape})"

    def metadata(self, version_key: str) -> dict[str, object]:
        """What a weights file records about its model; `version_key` names the framework's
        version (e.g. `torch_version`)."""
        return {
            "format": FORMAT,
            "model_ref": self.model_ref,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            version_key: self.framework_version,
        }


def read_file(
    path: Path,
    read: Callable[[Path], _Read],
    errors: tuple[type[Exception], ...] = (Exception,),
) -> _Read:
    """`read(path)`, or `WeightsError` when there is no file or `read` raises one of `errors`
    (the reader's ways of saying the file is not its format)."""
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        return read(path)
    except errors as exc:
        raise WeightsError(f"{path}: not a readable weights file ({one_line(exc)})") from None


def parse_metadata(
    path: Path, metadata: object, version_key: str, *, contents: str = "metadata"
) -> WeightsInfo:
    """The `WeightsInfo` that `metadata` (as read from the file at `path`) records.

    Raises `WeightsError` when it is not inferedge's format, or is malformed; `contents` names
    what was read, for the message.
    """
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise WeightsError(f"{path}: not an inferedge weights file (format {FORMAT!r})")
    model_ref = metadata.get("model_ref")
    num_classes = metadata.get("num_classes")
    input_shape = metadata.get("input_shape")
    version = metadata.get(version_key)
    if not (
        isinstance(model_ref, str)
        and isinstance(num_classes, int)
        and isinstance(input_shape, list)
        and all(isinstance(d, int) for d in input_shape)
        and isinstance(version, str)
    ):
        raise malformed(path, contents)
    return WeightsInfo(model_ref, num_classes, tuple(input_shape), version)


def malformed(path: Path, contents: str) -> WeightsError:
    """The error for a file in inferedge's format whose `contents` cannot be used."""
    return WeightsError(f"{path}: malformed inferedge weights file ({contents})")


def check_belongs(
    path: Path, info: WeightsInfo, *, model_ref: str, num_classes: int, input_shape: tuple[int, ...]
) -> None:
    """`WeightsError` unless the file at `path`, described by `info`, holds weights of this
    model (whatever framework version wrote it)."""
    expected = WeightsInfo(model_ref, num_classes, tuple(input_shape), info.framework_version)
    if info != expected:
        raise WeightsError(
            f"{path}: holds weights of model {info.describe()}, not {expected.describe()}"
        )


def write_atomically(path: Path, write: Callable[[Path], None], suffix: str = "") -> None:
    """Call `write` on a hidden partial file beside `path`, then rename it to `path`.

    `suffix` is kept at the end of the partial file's name, for a writer that insists on it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name.removesuffix(suffix)}.partial{suffix}")
    write(partial)
    # A reader never sees a half-written file under the final name.
    os.replace(partial, path)


def check_plan_matches(
    plan: Plan, framework: str, info: WeightsInfo, cut_names: Sequence[str], source: str
) -> None:
    """Refuse a plan made for another model than the weights `info` describe (one line naming
    both): another framework, model, shape, class count, cut count or exit cut name."""
    model = plan.model
    same = (
        model.framework == framework
        and model.source == info.model_ref
        and model.input_shape == info.input_shape
        and model.num_classes == info.num_classes
        and model.num_cuts == len(cut_names) - 1
        and all(cut_names[e.cut_index] == e.name for e in plan.exits)
    )
    if not same:
        shape = "x".join(map(str, model.input_shape))
        raise InferedgeError(
            f"{source}: the plan is for {model.framework} model {model.source!r} "
            f"({model.num_classes} classes, {shape}, {model.num_cuts} cuts), but the weights "
            f"hold {framework} model {info.describe()} with {len(cut_names) - 1} cuts"
        )
