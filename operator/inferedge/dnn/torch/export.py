"""Export a plan's partitions as torch.export programs, and load them back, verified.

Which files a plan becomes, the manifest listing them and the checks before loading are
`inferedge.dnn.artifacts`'; this writes and reads the programs, each exported with a symbolic
batch dimension.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.export import Dim, ExportedProgram

from inferedge.core.errors import InferedgeError, one_line
from inferedge.core.manifest import ArtifactFile, Calibration, Manifest, Step
from inferedge.core.plan import Plan
from inferedge.core.roles import Role
from inferedge.dnn.artifacts import (
    Kind,
    Shape,
    build_manifest,
    describe_file,
    export_parts,
    load_steps,
    verified_path,
)
from inferedge.dnn.protocols import ArrayFn, ArtifactLoadError
from inferedge.dnn.torch.graph import CutGraph
from inferedge.dnn.torch.program import load_program

# The runtime imports the load error from here, beside `load_part` that raises it.
__all__ = [
    "FORMAT",
    "ArtifactLoadError",
    "LoadedStep",
    "array_fn",
    "export_partitions",
    "exported",
    "load_part",
    "make_manifest",
    "served_module",
]

FORMAT = "torch.export"
# One example above 1 lets export keep the batch dimension symbolic instead of specialising it.
_EXAMPLE_BATCH = 2
_MAX_BATCH = 4096


def exported(module: nn.Module, in_shape: tuple[int, ...], name: str) -> ExportedProgram:
    """`module` as the program a server loads: exported with a symbolic batch dimension."""
    module.eval()
    example = torch.zeros(_EXAMPLE_BATCH, *in_shape)
    batch = Dim("batch", min=1, max=_MAX_BATCH)
    try:
        return torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:  # torch raises many unrelated types here; all mean "cannot export"
        raise InferedgeError(f"cannot export {name}: {one_line(exc)}") from None


def served_module(program: ExportedProgram) -> nn.Module:
    """`program` as a server calls it: a module that skips the program's own input checks.

    Those checks (every call re-tests each input's shape against the export's constraints) cost
    about 25 us a call on our CI machines, as much as a small segment's work; the partition
    already refuses any batch whose shape or dtype differs from its manifest's before a call.
    """
    module = program.module()
    module.validate_inputs = False  # type: ignore[assignment]  # torch.export reads it per call
    return module


def array_fn(module: nn.Module) -> ArrayFn:
    """How a server calls a loaded program: a numpy batch in, a numpy batch out."""

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = module(torch.from_numpy(np.ascontiguousarray(x))).numpy()
        return out

    return run


def _export(module: nn.Module, in_shape: tuple[int, ...], path: Path) -> tuple[int, ...]:
    program = exported(module, in_shape, path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))
    with torch.no_grad():
        return tuple(module(torch.zeros(_EXAMPLE_BATCH, *in_shape)).shape[1:])


def export_partitions(
    graph: CutGraph, plan: Plan, heads: Mapping[int, nn.Module], out_dir: Path
) -> tuple[list[ArtifactFile], dict[str, list[Step]]]:
    """Write every segment and head file of both parts under `out_dir`; return what was written.

    `heads` maps each exit's cut index to its trained head module.
    """

    def write(module: nn.Module, in_shape: Shape, name: str, kind: Kind) -> ArtifactFile:
        path = out_dir / name
        out_shape = _export(module, in_shape, path)
        return describe_file(path, name, kind, in_shape, out_shape)

    return export_parts(plan, graph.cut_points, graph.between, heads, write, suffix=".pt2")


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
        framework="torch",
        file_format=FORMAT,
        framework_versions={"torch": torch.__version__},
    )


@dataclass(frozen=True)
class LoadedStep:
    """One runnable step of a part: its segment, and its exit head if it ends at one."""

    step: Step
    segment: nn.Module
    head: nn.Module | None


def load_part(
    manifest: Manifest, part: Role, root: Path, *, whole_chain: bool = False
) -> list[LoadedStep]:
    """Load a part's files from `root`, refusing any file whose sha256 differs from the manifest;
    each is read by `load_program`, which runs nothing the file holds."""
    digests = manifest.digests()

    def load(name: str) -> nn.Module:
        path = verified_path(root, name, digests[name])
        program = load_program(path, f"artifact {name!r}")
        try:
            return served_module(program)
        except Exception as exc:  # a malformed graph can fail in many ways inside torch.fx
            raise ArtifactLoadError(f"artifact {name!r}: {one_line(exc)}") from None

    return [
        LoadedStep(*loaded) for loaded in load_steps(manifest, part, load, whole_chain=whole_chain)
    ]
