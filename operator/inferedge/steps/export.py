"""The export step: both partitions with their exits, published as one immutable set."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from inferedge.api.jobs import ExportJob
from inferedge.api.keys import ArtifactIdentity, identity_key, parse_identity
from inferedge.core.digest import sha256_file
from inferedge.core.errors import InferedgeError
from inferedge.core.manifest import (
    ArtifactFile,
    Calibration,
    Manifest,
    SpaceSection,
    artifact_prefix,
    dump_manifest,
    parse_manifest,
)
from inferedge.core.plan import Plan, parse_plan
from inferedge.core.space import SPACE_FILE, SpaceInputs, dump_space
from inferedge.core.space_plan import stops
from inferedge.dnn.frameworks import get_workflow
from inferedge.dnn.protocols import ExitHandle, Workflow
from inferedge.steps.evaluation import EVALUATION_FILE, load_evaluation
from inferedge.steps.reporting import Reporter
from inferedge.steps.space import SPACE_NAME, read_space
from inferedge.steps.training import EVALUATION_DIR, exits_name, weights_name
from inferedge.storage import (
    ArtifactStore,
    is_committed,
    open_store,
    publish,
    read_manifest,
    read_text,
)


@dataclass(frozen=True)
class Published:
    """A committed artifact set: where it is and what it holds."""

    prefix: str
    manifest: Manifest
    created: bool
    """False when the same set was already committed (a retried or repeated export)."""


def export_to_store(
    plan: Plan,
    workflow: Workflow,
    backbone: object,
    exits: Sequence[ExitHandle],
    store: ArtifactStore,
    *,
    calibration: Calibration | None,
    namespace: str,
    pipeline: str,
    set_id: str,
    space: SpaceInputs | None = None,
) -> Published:
    """Export both parts and publish them under `<namespace>/<pipeline>/<plan-hash>/<set-id>`.

    `workflow` writes the files (`backbone` and `exits` are its own handles) to a temporary
    directory first; the store sees them only through `publish`, which writes the manifest last
    and removes everything it wrote if any step fails. `set_id` names everything that decides
    the bytes, so a set already committed under it is the same set: it is kept, not rewritten.
    `space` makes the set an operating space (`core.space`): its file goes in with the rest.
    """
    prefix = artifact_prefix(namespace, pipeline, plan.hash, set_id)
    if is_committed(store, prefix):
        manifest = parse_manifest(read_manifest(store, prefix), f"{store.uri}/{prefix}")
        return Published(prefix, manifest, created=False)
    with tempfile.TemporaryDirectory(prefix="inferedge-export-") as tmp:
        root = Path(tmp)
        manifest = workflow.export(plan, backbone, exits, calibration, root)
        if space is not None:
            manifest = with_space(manifest, space, root)
        files = {f.name: root / f.name for f in manifest.files}
        publish(store, prefix, files, dump_manifest(manifest))
    return Published(prefix, manifest, created=True)


def with_space(manifest: Manifest, space: SpaceInputs, root: Path) -> Manifest:
    """`manifest` with the space file written under `root` and listed, and the section that
    marks the set as a space."""
    if space.plan_hash != manifest.plan.hash:
        raise InferedgeError(f"space file of plan {space.plan_hash}, not {manifest.plan.hash}")
    path = root / SPACE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dump_space(space))
    plan = manifest.plan
    candidates = tuple(e.cut_index for e in plan.exits)
    section = SpaceSection(
        candidates=candidates,
        max_split=plan.split,
        stops=stops(candidates, plan.split, plan.final_cut),
        file=SPACE_FILE,
    )
    listed = ArtifactFile(
        name=SPACE_FILE,
        sha256=sha256_file(path),
        size=path.stat().st_size,
        kind="space",
        input_shape=(),
        output_shape=(),
    )
    return Manifest.model_validate(
        {**dict(manifest), "files": (*manifest.files, listed), "space": section}
    )


def read_identity(store: ArtifactStore, training_prefix: str) -> ArtifactIdentity:
    """The identity the training step recorded for the set it trained."""
    key = identity_key(training_prefix)
    return parse_identity(store.get_bytes(key), f"{store.uri}/{key}")


def run_export(job: ExportJob, reporter: Reporter) -> Published:
    """Publish the set the training step left under `job.training_prefix`."""
    store = open_store(job.store)
    plan = parse_plan(read_text(store, job.plan_key), job.plan_key)
    identity = read_identity(store, job.training_prefix)
    if identity.plan_hash != plan.hash:
        raise InferedgeError(
            f"{job.training_prefix} was trained for plan {identity.plan_hash}, not {plan.hash}"
        )
    workflow = get_workflow(plan.model.framework)
    weights, exits_file = weights_name(workflow), exits_name(workflow)
    with tempfile.TemporaryDirectory(prefix="inferedge-export-") as tmp:
        root = Path(tmp)
        for name in (weights, exits_file, f"{EVALUATION_DIR}/{EVALUATION_FILE}"):
            store.get_file(f"{job.training_prefix}/{name}", root / name)
        space_key = f"{job.training_prefix}/{EVALUATION_DIR}/{SPACE_NAME}"
        if store.exists(space_key):
            store.get_file(space_key, root / EVALUATION_DIR / SPACE_NAME)
        backbone = workflow.load_backbone(root / weights)
        workflow.check_plan(plan, backbone, job.plan_key)
        published = export_to_store(
            plan,
            workflow,
            backbone,
            workflow.load_exits(root / exits_file, plan),
            store,
            calibration=load_evaluation(root / EVALUATION_DIR).calibration,
            namespace=job.namespace,
            pipeline=job.pipeline,
            set_id=identity.set_id,
            space=read_space(root / EVALUATION_DIR / SPACE_NAME),
        )
    size = sum(f.size for f in published.manifest.files) / 1024 / 1024
    verb = "published" if published.created else "already published"
    reporter.info(
        f"{verb}: {len(published.manifest.files)} files ({size:.1f} MiB) under {published.prefix}/"
    )
    return published
