"""Loading a partition from an artifact store: the manifest checked against its pin, the
files fetched into a local cache and verified, the part built and warmed up."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from inferedge.core.manifest import MANIFEST_NAME, loaded_steps, parse_manifest, parse_set_prefix
from inferedge.core.roles import Role
from inferedge.dnn.frameworks import get_workflow
from inferedge.dnn.protocols import ArtifactLoadError
from inferedge.runtime.partition import Partition, PartitionError
from inferedge.storage.artifacts import fetch, read_manifest
from inferedge.storage.base import ArtifactStore

log = logging.getLogger(__name__)


def load_partition(
    store: ArtifactStore,
    prefix: str,
    part: Role,
    cache_dir: Path,
    manifest_sha256: str,
    *,
    whole_chain: bool = False,
) -> Partition:
    """Load one part of the artifact set under `prefix`, verified, through a local cache; with
    `whole_chain`, the files of every step, so `at` can serve a point beyond the part.

    The manifest must have the sha256 `manifest_sha256`, which comes from the trusted side (the
    operator's ConfigMap, the runner's arguments), not from the store: whoever can write to the
    bucket cannot swap in a set of their own, because the manifest's file digests are only
    believed once the manifest itself matches the pin.

    Files are kept under `cache_dir/<plan-hash>/<set-id>/`, so a restart or a second replica on
    the same node downloads nothing; every file is checked against the manifest's sha256 on load,
    and a cached file that fails the check is downloaded again once.
    """
    where = parse_set_prefix(prefix)
    source = f"{store.uri}/{where}/{MANIFEST_NAME}"
    data = read_manifest(store, str(where))
    actual = hashlib.sha256(data).hexdigest()
    if actual != manifest_sha256:
        raise PartitionError(
            f"{source}: sha256 {actual[:12]}… is not the pinned {manifest_sha256[:12]}…; "
            "refusing the set (it was changed after it was pinned, or the pin is stale)"
        )
    manifest = parse_manifest(data, source)
    plan_hash = manifest.plan.hash
    if where.plan_hash != plan_hash:
        raise PartitionError(f"{source}: holds plan {plan_hash}, but its prefix names another")
    root = cache_dir / plan_hash / where.set_id
    digests = manifest.digests()
    steps = loaded_steps(manifest, part, whole_chain=whole_chain)
    names = sorted({n for s in steps for n in (s.segment, s.head) if n is not None})
    if part == "edge" and manifest.space is not None:
        names.append(manifest.space.file)  # the edge works out its map from it
    missing = {n: digests[n] for n in names if not (root / n).is_file()}
    if missing:
        fetch(store, prefix, root, missing)
    workflow = get_workflow(manifest.framework)
    try:
        loaded = workflow.load_part(manifest, part, root, whole_chain=whole_chain)
    except ArtifactLoadError as exc:
        log.warning("%s: cached %s part is unusable (%s); downloading it again", root, part, exc)
        fetch(store, prefix, root, {n: digests[n] for n in names})
        loaded = workflow.load_part(manifest, part, root, whole_chain=whole_chain)
    own = loaded_steps(manifest, part)
    partition = Partition(
        manifest, part, [s for s in loaded if s.step in own], prefix=str(where), loaded=loaded
    )
    partition.warm_up()
    return partition
