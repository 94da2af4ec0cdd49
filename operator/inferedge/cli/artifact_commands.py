"""Commands for partition artifacts: export them to a store, and verify what a store holds."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from inferedge.cli.exits_commands import existing_file, plan_and_backbone
from inferedge.core.manifest import parse_manifest
from inferedge.core.plan import Plan
from inferedge.core.roles import ROLES

store_option = click.option(
    "--store",
    required=True,
    envvar="INFEREDGE_STORE",
    help="A directory, file:///path, or s3://bucket[/prefix] (S3 credentials from "
    "INFEREDGE_S3_* variables or a Secret file) [env: INFEREDGE_STORE].",
)


@click.command()
@click.option("--plan", "plan_path", type=existing_file, required=True)
@click.option(
    "--weights",
    type=existing_file,
    required=True,
    help="Trained backbone (torch: .pt, tensorflow: .weights.h5).",
)
@click.option(
    "--exits", "exits_path", type=existing_file, required=True, help="`train-exits` output."
)
@click.option(
    "--evaluation",
    type=click.Path(exists=True, path_type=Path),
    help="An `inferedge evaluate` report directory: its chosen threshold and measured figures "
    "go into the manifest.",
)
@store_option
@click.option("--namespace", default="default", show_default=True)
@click.option("--pipeline", required=True, help="Pipeline name (a DNS-1123 label).")
def export(
    *,
    plan_path: Path,
    weights: Path,
    exits_path: Path,
    evaluation: Path | None,
    store: str,
    namespace: str,
    pipeline: str,
) -> None:
    """Export both partitions and publish them, manifest last, to the store.

    The files are in the plan's framework: torch.export `.pt2` programs or `.keras` models.
    The set is named by the plan, the weights, the exits and the calibration, so exporting the
    same files again keeps the committed set, and anything retrained publishes a new one.
    """
    from inferedge.api.keys import artifact_set_id
    from inferedge.core.digest import json_digest, sha256_file
    from inferedge.steps.export import export_to_store
    from inferedge.storage import open_store

    plan, workflow, backbone = plan_and_backbone(plan_path, weights)
    exits = workflow.load_exits(exits_path, plan)
    calibration = None
    if evaluation is not None:
        from inferedge.steps.evaluation import load_evaluation

        loaded = load_evaluation(evaluation)
        if loaded.plan.hash != plan.hash:
            raise click.BadParameter(
                f"evaluates plan {loaded.plan.hash}, not {plan.hash}", param_hint="'--evaluation'"
            )
        calibration = loaded.calibration
    target = open_store(store)
    inputs = json_digest(
        {
            "exits": sha256_file(exits_path),
            "calibration": calibration.model_dump(mode="json") if calibration else None,
        }
    )
    published = export_to_store(
        plan,
        workflow,
        backbone,
        exits,
        target,
        calibration=calibration,
        namespace=namespace,
        pipeline=pipeline,
        set_id=artifact_set_id(inputs, sha256_file(weights)),
    )
    files = published.manifest.files
    size = sum(f.size for f in files) / 1024 / 1024
    verb = "published" if published.created else "already published (the same set)"
    click.echo(
        f"{verb}: {len(files)} files ({size:.1f} MiB) and the manifest to {target.uri} "
        f"under {published.prefix}/"
    )
    if calibration is not None:
        click.echo(f"c_thr {calibration.threshold:.2f} ({calibration.confidence})")


@click.command()
@store_option
@click.option("--prefix", required=True, help="<namespace>/<pipeline>/<plan-hash>/<set-id>")
def verify(*, store: str, prefix: str) -> None:
    """Fetch an artifact set, check every sha256 against its manifest and load both parts
    (with the manifest's framework)."""
    from inferedge.dnn.frameworks import get_workflow
    from inferedge.storage import open_store
    from inferedge.storage.artifacts import fetch, read_manifest

    source = open_store(store)
    manifest = parse_manifest(read_manifest(source, prefix), f"{source.uri}/{prefix}/manifest.json")
    workflow = get_workflow(manifest.framework)
    with tempfile.TemporaryDirectory(prefix="inferedge-verify-") as tmp:
        root = Path(tmp)
        fetch(source, prefix, root, manifest.digests())
        for part in ROLES:
            steps = workflow.load_part(manifest, part, root)
            exits = sum(s.head is not None for s in steps)
            click.echo(f"{part}: {len(steps)} segments, {exits} exits loaded")
    plan: Plan = manifest.plan
    click.echo(
        f"ok: {len(manifest.files)} files verified for plan {plan.hash} "
        f"({manifest.framework} {plan.model.name}, split after cut {plan.split})"
    )
