"""Export a plan's partitions and publish them as one committed artifact set."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from inferedge.core.errors import InferedgeError
from inferedge.core.manifest import Calibration, Manifest, artifact_prefix, dump_manifest
from inferedge.core.plan import Plan
from inferedge.dnn.protocols import ExitHandle, Workflow
from inferedge.storage.artifacts import discard, is_committed, publish
from inferedge.storage.base import ArtifactStore


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
    replace: bool = False,
) -> tuple[str, Manifest]:
    """Export both parts and publish them under `<namespace>/<pipeline>/<plan-hash>`.

    `workflow` writes the files (`backbone` and `exits` are its own handles) to a temporary
    directory first; the store sees them only through `publish`, which
    writes the manifest last and removes everything it wrote if any step fails. A committed set
    is immutable; `replace` discards it first (retrained weights keep the plan's hash, since the
    hash names the decisions, not the weights).
    """
    prefix = artifact_prefix(namespace, pipeline, plan.hash)
    if is_committed(store, prefix):
        if not replace:
            raise InferedgeError(
                f"{store.uri}/{prefix} already holds a committed artifact set for plan "
                f"{plan.hash}; sets are immutable: pass --replace to discard it and publish again"
            )
        discard(store, prefix)
    with tempfile.TemporaryDirectory(prefix="inferedge-export-") as tmp:
        root = Path(tmp)
        manifest = workflow.export(plan, backbone, exits, calibration, root)
        files = {f.name: root / f.name for f in manifest.files}
        publish(store, prefix, files, dump_manifest(manifest))
    return prefix, manifest
