"""The artifact manifest: what one plan's exported partitions are, and how to check them.

Artifacts of a plan live under `<namespace>/<pipeline>/<plan-hash>/<set-id>/` in the store. The
manifest is written last (the commit marker) and never overwritten, so readers never see a half
set. Each part is a list of steps the runtime follows in order: run a segment file from one cut
to the next; if that cut holds an exit, run its head and answer when it is confident.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inferedge.core.calibration import ConfidenceKind
from inferedge.core.errors import InferedgeError
from inferedge.core.plan import Plan
from inferedge.core.roles import Role
from inferedge.core.versioned import parse_versioned

MANIFEST_SCHEMA_VERSION: Final = "inferedge.io/artifacts/v1"
MANIFEST_NAME: Final = "manifest.json"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE_NAME = re.compile(r"^(edge|cloud)/[a-z0-9_.-]+$")


class ManifestError(InferedgeError):
    """A manifest is malformed, of another schema version, or names a bad key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArtifactFile(_Frozen):
    """One exported file: a segment or an exit head."""

    name: str = Field(description="Path under the plan's prefix, e.g. 'edge/segment_0_3.pt2'.")
    sha256: str
    size: int = Field(ge=0)
    kind: Literal["segment", "head", "space"]
    input_shape: tuple[int, ...] = Field(description="Per-sample input shape.")
    output_shape: tuple[int, ...] = Field(description="Per-sample output shape.")
    dtype: str = "float32"

    @model_validator(mode="after")
    def _well_formed(self) -> ArtifactFile:
        if not _FILE_NAME.match(self.name):
            raise ValueError(f"name {self.name!r} must look like 'edge/<file>' or 'cloud/<file>'")
        if not _SHA256.match(self.sha256):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return self


class Step(_Frozen):
    """Run `segment` from cut `start` to cut `end`; then, if `head` is set, test that exit."""

    start: int = Field(ge=0)
    end: int = Field(ge=1)
    segment: str
    head: str | None = None
    final: bool = Field(default=False, description="`end` is the final classifier's output.")


class Calibration(_Frozen):
    """How confident an exit must be to answer, and what that was measured to give."""

    confidence: ConfidenceKind = "max_softmax"
    threshold: float = Field(ge=0.0, le=1.0, description="c_thr: answer when confidence >= it.")
    split: str = Field(description="Data split the threshold was chosen on.")
    accuracy: float = Field(ge=0.0, le=1.0, description="Measured accuracy at the threshold.")
    exit_accuracy: dict[int, float] = Field(description="Accuracy of each exit on its own.")
    expected_latency_ms: float = Field(ge=0.0)
    offload_rate: float = Field(ge=0.0, le=1.0)


class SpaceSection(_Frozen):
    """Marks a set as an operating space (`core.space`): which points its files serve."""

    candidates: tuple[int, ...] = Field(description="Cuts with a trained exit head, ascending.")
    max_split: int = Field(ge=0, description="The deepest split the edge's memory allows.")
    stops: tuple[int, ...] = Field(description="Cuts the segment files end at, ascending.")
    file: str = Field(description="The space file: what each candidate said of each sample.")

    @model_validator(mode="after")
    def _ordered(self) -> SpaceSection:
        for name, cuts in (("candidates", self.candidates), ("stops", self.stops)):
            if list(cuts) != sorted(set(cuts)):
                raise ValueError(f"{name} must be distinct and ascending")
        if not set(self.candidates) <= set(self.stops) or self.max_split not in self.stops:
            raise ValueError("every candidate and the deepest split must be a stop")
        return self


class Manifest(_Frozen):
    """Everything the runtime needs to load and trust one plan's partitions."""

    schema_version: Literal["inferedge.io/artifacts/v1"] = MANIFEST_SCHEMA_VERSION
    created_at: str
    plan: Plan
    versions: dict[str, str] = Field(description="inferedge, framework, python versions.")
    framework: Literal["torch", "tensorflow"]
    format: str = Field(description="File format of segments and heads, e.g. 'torch.export'.")
    files: tuple[ArtifactFile, ...]
    edge: tuple[Step, ...]
    cloud: tuple[Step, ...]
    calibration: Calibration | None = None
    space: SpaceSection | None = Field(
        default=None, description="Set when the files serve an operating space, not one point."
    )

    @model_validator(mode="after")
    def _steps_name_files(self) -> Manifest:
        names = {f.name for f in self.files}
        kinds = {f.name: f.kind for f in self.files}
        if self.space is not None and kinds.get(self.space.file) != "space":
            raise ValueError(f"space file {self.space.file!r} is not listed as a space file")
        for part, steps in (("edge", self.edge), ("cloud", self.cloud)):
            for step in steps:
                for name in (step.segment, step.head):
                    if name is not None and name not in names:
                        raise ValueError(f"{part} step {step.start}->{step.end} names {name!r}")
        if len(names) != len(self.files):
            raise ValueError("file names must be unique")
        return self

    def digests(self) -> dict[str, str]:
        """File name -> expected sha256, for verification on load."""
        return {f.name: f.sha256 for f in self.files}


def artifact_prefix(namespace: str, pipeline: str, plan_hash: str, set_id: str) -> str:
    """`<namespace>/<pipeline>/<plan-hash>/<set-id>`: names are checked so a key never escapes
    its place. `set_id` names everything else that decides the set's bytes (trained weights,
    heads, calibration), so a retrained set never collides with a committed one."""
    for field, value in (("namespace", namespace), ("pipeline", pipeline)):
        if not _DNS_LABEL.match(value):
            raise ManifestError(
                f"{field} {value!r} must be a DNS-1123 label (lowercase letters, digits and '-', "
                "at most 63 characters, starting and ending alphanumeric)"
            )
    for field, value in (("plan hash", plan_hash), ("artifact set id", set_id)):
        if not re.fullmatch(r"[0-9a-f]{16}", value):
            raise ManifestError(f"{field} {value!r} must be 16 lowercase hex digits")
    return f"{namespace}/{pipeline}/{plan_hash}/{set_id}"


@dataclass(frozen=True)
class SetPrefix:
    """Where one artifact set lives, parsed: `<namespace>/<pipeline>/<plan-hash>/<set-id>`."""

    namespace: str
    pipeline: str
    plan_hash: str
    set_id: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pipeline}/{self.plan_hash}/{self.set_id}"


def parse_set_prefix(prefix: str) -> SetPrefix:
    """The parts of an artifact set's prefix; `ManifestError` names what is wrong."""
    parts = prefix.strip("/").split("/")
    if len(parts) != 4:
        raise ManifestError(
            f"artifact set prefix {prefix!r}: expected <namespace>/<pipeline>/<plan-hash>/<set-id>"
        )
    found = SetPrefix(*parts)
    artifact_prefix(found.namespace, found.pipeline, found.plan_hash, found.set_id)
    return found


def dump_manifest(manifest: Manifest) -> bytes:
    """Canonical bytes of a manifest (sorted keys), so equal manifests have equal bytes."""
    payload = manifest.model_dump(mode="json")
    return (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()


def parse_manifest(data: bytes, source: str) -> Manifest:
    """Parse and validate manifest bytes; one-line errors name the source and the field."""
    return parse_versioned(
        data,
        source,
        Manifest,
        version=MANIFEST_SCHEMA_VERSION,
        error=ManifestError,
        hint="re-export the artifacts with this version of inferedge",
    )


def part_steps(plan: Plan, part: Role) -> list[tuple[int, int, bool, bool]]:
    """(start, end, ends at an exit, ends at the final classifier) for each step of a part."""
    if part == "edge":
        start, end = 0, min(plan.split, plan.final_cut)
        exits = [e.cut_index for e in plan.edge_exits()]
    else:
        start, end = plan.split, plan.final_cut
        exits = [e.cut_index for e in plan.cloud_exits()]
    if end <= start:
        return []
    bounds = [*exits, end] if not exits or exits[-1] != end else exits
    steps = []
    for stop in bounds:
        final = stop == plan.final_cut
        steps.append((start, stop, stop in exits, final))
        start = stop
    return steps


def chain(manifest: Manifest) -> tuple[Step, ...]:
    """Every step of the set in path order, the edge's then the cloud's: from the model input
    to the final classifier."""
    return (*manifest.edge, *manifest.cloud)


def loaded_steps(manifest: Manifest, part: Role, *, whole_chain: bool = False) -> tuple[Step, ...]:
    """The steps whose files `part` loads: its own; the whole chain for an operating space's
    cloud, since the cloud starts at whichever split the edge chose, and for any side told to
    load it (`whole_chain`: a server that serves a point beyond its part, such as a baseline)."""
    if whole_chain or (part == "cloud" and manifest.space is not None):
        return chain(manifest)
    return manifest.edge if part == "edge" else manifest.cloud
