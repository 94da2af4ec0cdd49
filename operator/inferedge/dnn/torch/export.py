"""Export a plan's partitions as torch.export programs, and load them back, verified.

Each part becomes the segment files between its exits plus one file per exit head. Exit
decisions stay in the runtime: a data-dependent branch does not export, and keeping the threshold
out of the files lets a threshold change roll out without re-exporting anything.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.export import Dim

from inferedge import __version__
from inferedge.core.digest import sha256_file
from inferedge.core.errors import InferedgeError, one_line
from inferedge.core.manifest import ArtifactFile, Calibration, Manifest, Step, part_steps
from inferedge.core.plan import Plan
from inferedge.dnn.torch.graph import CutGraph

FORMAT = "torch.export"
# One example above 1 lets export keep the batch dimension symbolic instead of specialising it.
_EXAMPLE_BATCH = 2
_MAX_BATCH = 4096


class ArtifactLoadError(InferedgeError):
    """An exported file is missing, corrupted or not a torch.export program."""


def _export(module: nn.Module, in_shape: tuple[int, ...], path: Path) -> tuple[int, ...]:
    module.eval()
    example = torch.zeros(_EXAMPLE_BATCH, *in_shape)
    batch = Dim("batch", min=1, max=_MAX_BATCH)
    try:
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:  # torch raises many unrelated types here; all mean "cannot export"
        raise InferedgeError(f"cannot export {path.name}: {one_line(exc)}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))
    with torch.no_grad():
        return tuple(module(example).shape[1:])


def export_partitions(
    graph: CutGraph, plan: Plan, heads: Mapping[int, nn.Module], out_dir: Path
) -> tuple[list[ArtifactFile], dict[str, list[Step]]]:
    """Write every segment and head file of both parts under `out_dir`; return what was written.

    `heads` maps each exit's cut index to its trained head module.
    """
    files: list[ArtifactFile] = []
    steps: dict[str, list[Step]] = {"edge": [], "cloud": []}
    part: Literal["edge", "cloud"]
    for part in ("edge", "cloud"):
        for start, end, has_exit, final in part_steps(plan, part):
            segment_name = f"{part}/segment_{start}_{end}.pt2"
            files.append(
                _file(
                    graph.between(start, end),
                    in_shape=graph.cut_points[start].shape,
                    name=segment_name,
                    out_dir=out_dir,
                    kind="segment",
                )
            )
            head_name = None
            if has_exit:
                if end not in heads:
                    raise InferedgeError(f"no trained head for the exit at cut {end}")
                head_name = f"{part}/head_{end}.pt2"
                files.append(
                    _file(
                        heads[end],
                        in_shape=graph.cut_points[end].shape,
                        name=head_name,
                        out_dir=out_dir,
                        kind="head",
                    )
                )
            steps[part].append(
                Step(start=start, end=end, segment=segment_name, head=head_name, final=final)
            )
    return files, steps


def _file(
    module: nn.Module, *, in_shape: tuple[int, ...], name: str, out_dir: Path, kind: str
) -> ArtifactFile:
    path = out_dir / name
    out_shape = _export(module, in_shape, path)
    return ArtifactFile(
        name=name,
        sha256=sha256_file(path),
        size=path.stat().st_size,
        kind=kind,  # type: ignore[arg-type]
        input_shape=in_shape,
        output_shape=out_shape,
    )


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
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        framework="torch",
        format=FORMAT,
        files=tuple(files),
        edge=tuple(steps["edge"]),
        cloud=tuple(steps["cloud"]),
        calibration=calibration,
    )


@dataclass(frozen=True)
class LoadedStep:
    """One runnable step of a part: its segment, and its exit head if it ends at one."""

    step: Step
    segment: nn.Module
    head: nn.Module | None


def load_part(manifest: Manifest, part: Literal["edge", "cloud"], root: Path) -> list[LoadedStep]:
    """Load a part's files from `root`, refusing any file whose sha256 differs from the manifest."""
    digests = manifest.digests()

    def load(name: str) -> nn.Module:
        path = root / name
        if not path.is_file():
            raise ArtifactLoadError(f"artifact {name!r} is missing under {root}")
        actual = sha256_file(path)
        if actual != digests[name]:
            raise ArtifactLoadError(
                f"artifact {name!r}: sha256 mismatch (manifest says {digests[name][:12]}…, "
                f"file has {actual[:12]}…); refusing to load it"
            )
        try:
            return torch.export.load(str(path)).module()
        except Exception as exc:  # a corrupted archive can fail in many ways inside torch
            raise ArtifactLoadError(f"artifact {name!r}: {one_line(exc)}") from None

    steps = manifest.edge if part == "edge" else manifest.cloud
    return [
        LoadedStep(s, load(s.segment), load(s.head) if s.head is not None else None) for s in steps
    ]
