"""Exported partitions, whatever the framework: which files a plan's parts become, the manifest
that lists them, and the checks a file passes before it is loaded back.

Each part becomes the segment files between its exits plus one file per exit head. Exit
decisions stay in the runtime: a data-dependent branch does not export, and keeping the
threshold out of the files lets a threshold change roll out without re-exporting anything. A
backend supplies only how one model is written to a file and read back.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from inferedge import __version__
from inferedge.core.digest import sha256_file
from inferedge.core.errors import InferedgeError
from inferedge.core.manifest import (
    ArtifactFile,
    Calibration,
    Manifest,
    Step,
    loaded_steps,
    part_steps,
)
from inferedge.core.plan import Plan
from inferedge.core.profile import CutPoint
from inferedge.core.roles import ROLES, Role
from inferedge.dnn.protocols import ArtifactLoadError

Kind = Literal["segment", "head"]
Shape = tuple[int, ...]

_Model = TypeVar("_Model")
_Loaded = TypeVar("_Loaded")


def export_parts(
    plan: Plan,
    cut_points: Sequence[CutPoint],
    between: Callable[[int, int], _Model],
    heads: Mapping[int, _Model],
    write: Callable[[_Model, Shape, str, Kind], ArtifactFile],
    *,
    suffix: str,
) -> tuple[list[ArtifactFile], dict[str, list[Step]]]:
    """Write every segment and head file of both parts; return what was written, and the steps.

    `between(start, end)` is the backbone from cut `start` to cut `end`, `heads` maps each
    exit's cut index to its trained head, and `write(model, input shape, name, kind)` writes
    one file under the name `<part>/<file><suffix>` and describes it.
    """
    files: list[ArtifactFile] = []
    steps: dict[str, list[Step]] = {"edge": [], "cloud": []}
    part: Role
    for part in ROLES:
        for start, end, has_exit, final in part_steps(plan, part):
            segment_name = f"{part}/segment_{start}_{end}{suffix}"
            files.append(
                write(between(start, end), cut_points[start].shape, segment_name, "segment")
            )
            head_name = None
            if has_exit:
                if end not in heads:
                    raise InferedgeError(f"no trained head for the exit at cut {end}")
                head_name = f"{part}/head_{end}{suffix}"
                files.append(write(heads[end], cut_points[end].shape, head_name, "head"))
            steps[part].append(
                Step(start=start, end=end, segment=segment_name, head=head_name, final=final)
            )
    return files, steps


def describe_file(
    path: Path, name: str, kind: Kind, input_shape: Shape, output_shape: Shape
) -> ArtifactFile:
    """The manifest's entry for the file just written at `path`."""
    return ArtifactFile(
        name=name,
        sha256=sha256_file(path),
        size=path.stat().st_size,
        kind=kind,
        input_shape=input_shape,
        output_shape=output_shape,
    )


def build_manifest(
    plan: Plan,
    files: list[ArtifactFile],
    steps: dict[str, list[Step]],
    calibration: Calibration | None,
    *,
    framework: Literal["torch", "tensorflow"],
    file_format: str,
    framework_versions: Mapping[str, str],
) -> Manifest:
    """The manifest of an exported plan, stamped with the versions that produced it
    (inferedge's, the framework's `framework_versions` and Python's)."""
    return Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        plan=plan,
        versions={
            "inferedge": __version__,
            **framework_versions,
            "python": platform.python_version(),
        },
        framework=framework,
        format=file_format,
        files=tuple(files),
        edge=tuple(steps["edge"]),
        cloud=tuple(steps["cloud"]),
        calibration=calibration,
    )


def verified_path(root: Path, name: str, sha256: str) -> Path:
    """The path of file `name` under `root`; `ArtifactLoadError` when it is missing or its
    sha256 is not the manifest's `sha256`, so no tampered or stale file is ever loaded."""
    path = root / name
    if not path.is_file():
        raise ArtifactLoadError(f"artifact {name!r} is missing under {root}")
    actual = sha256_file(path)
    if actual != sha256:
        raise ArtifactLoadError(
            f"artifact {name!r}: sha256 mismatch (manifest says {sha256[:12]}…, "
            f"file has {actual[:12]}…); refusing to load it"
        )
    return path


def json_objects(value: object) -> Iterator[dict[str, Any]]:
    """Every JSON object nested anywhere in `value` (parsed JSON), without recursion, so a
    deeply nested file read from the store cannot exhaust the stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            yield item
            stack.extend(item.values())


def load_steps(
    manifest: Manifest, part: Role, load: Callable[[str], _Loaded], *, whole_chain: bool = False
) -> list[tuple[Step, _Loaded, _Loaded | None]]:
    """Each step `part` loads (`core.manifest.loaded_steps`) with its segment and, where it ends
    at an exit, its head, each loaded by `load(file name)`."""
    steps = loaded_steps(manifest, part, whole_chain=whole_chain)
    return [(s, load(s.segment), load(s.head) if s.head is not None else None) for s in steps]
