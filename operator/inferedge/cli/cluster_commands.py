"""`inferedge cluster ...`: the steps the operator's Jobs run, reading and writing the store.

Each is a thin composition of library steps that `inferedge run` also uses (see
`inferedge.local.runner.prepare`), with every input and output in the artifact store instead of
a local run directory: profile a model on this node, train and calibrate a plan's exits, export
and publish the two partitions.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import click

from inferedge.cli.artifact_commands import store_option
from inferedge.cli.params import SHAPE, IntList
from inferedge.core.errors import InferedgeError, describe_validation_error
from inferedge.dnn.frameworks import FRAMEWORKS

if TYPE_CHECKING:
    from inferedge.api.pipeline import InferencePipelineSpec
    from inferedge.dnn.data import Dataset, Splits
    from inferedge.dnn.protocols import Workflow
    from inferedge.storage import ArtifactStore

MIB = 1024 * 1024
EVALUATION_DIR = "evaluation"


def _progress(title: str) -> Callable[[int, int], None]:
    """A log-friendly progress callback: one line per tenth done (Job logs are not terminals)."""
    last = [-1]

    def progress(done: int, total: int) -> None:
        tenth = 10 * done // total if total else 0
        if tenth > last[0]:
            last[0] = tenth
            click.echo(f"{title}: {done}/{total}")

    return progress


def _fetch_object(uri: str, dest: Path) -> Path:
    """Download `s3://bucket/key` (credentials from the environment) to `dest`."""
    from inferedge.storage import open_store

    if not uri.startswith("s3://"):
        return Path(uri)
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise InferedgeError(f"{uri!r}: expected s3://bucket/key")
    dest.parent.mkdir(parents=True, exist_ok=True)
    open_store(f"s3://{bucket}").get_file(key, dest)
    return dest


def _model_ref(name: str, uri: str | None) -> str:
    """A zoo name as is; a stored model is downloaded to a path that is the same in every Job,
    because the path is the model's identity in profiles and plans."""
    if uri is None:
        return name
    local = Path(tempfile.gettempdir()) / "inferedge-models" / PurePosixPath(uri).name
    return str(_fetch_object(uri, local))


@click.group("cluster")
def cluster() -> None:
    """Steps the operator's Jobs run in a cluster, against an artifact store."""


@cluster.command("profile")
@click.argument("model")
@click.option("--framework", type=click.Choice(FRAMEWORKS), default="torch", show_default=True)
@click.option("--input-shape", type=SHAPE, required=True, help="Per-sample shape, e.g. 3,32,32.")
@click.option("--num-classes", type=click.IntRange(min=1), help="[default: from --dataset]")
@click.option("--dataset", help="Dataset that decides the number of classes (digits, s3://...).")
@click.option(
    "--model-uri", help="s3://bucket/key of a stored model (.pt2, or .keras) named MODEL."
)
@click.option("--batch-sizes", type=IntList("1,8"), default="1", show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--device-name", required=True, help="The DeviceProfile's name.")
@store_option
@click.option("--key", required=True, help="Store key to write the profile (JSON) to.")
def profile(
    *,
    model: str,
    framework: str,
    input_shape: tuple[int, ...],
    num_classes: int | None,
    dataset: str | None,
    model_uri: str | None,
    batch_sizes: tuple[int, ...],
    warmup: int,
    repeats: int,
    device_name: str,
    store: str,
    key: str,
) -> None:
    """Measure MODEL segment by segment on this node and write the profile to the store."""
    from inferedge.core.profile import dump_profile
    from inferedge.dnn.frameworks import get_backend
    from inferedge.dnn.protocols import ProfileRequest
    from inferedge.storage import open_store

    if num_classes is None:
        if dataset is None:
            raise click.UsageError("give --num-classes or --dataset")
        num_classes = _dataset(dataset, input_shape, None).num_classes
    request = ProfileRequest(
        model_ref=_model_ref(model, model_uri),
        num_classes=num_classes,
        input_shape=input_shape,
        batch_sizes=batch_sizes,
        warmup=warmup,
        repeats=repeats,
        device_name=device_name,
    )
    result = get_backend(framework).profile(request, _progress(f"profiling {model}"))
    target = open_store(store)
    target.put_bytes(key, dump_profile(result).encode())
    click.echo(f"profiled {model} ({result.num_cuts} cuts) on {device_name}; wrote {key}")


def _dataset(ref: str, shape: tuple[int, ...], num_classes: int | None) -> Dataset:
    from inferedge.local.data import resolve_dataset

    if len(shape) != 3:
        raise click.BadParameter(f"expected C,H,W, got {shape}", param_hint="'--input-shape'")
    return resolve_dataset(ref, (shape[0], shape[1], shape[2]), num_classes)


def _spec(text: str) -> InferencePipelineSpec:
    from pydantic import ValidationError

    from inferedge.api.pipeline import InferencePipelineSpec

    try:
        return InferencePipelineSpec.model_validate_json(text)
    except ValidationError as exc:
        raise click.BadParameter(
            describe_validation_error(exc, "spec"), param_hint="'--spec'"
        ) from None


def _read_text(store: ArtifactStore, key: str) -> str:
    return store.get_bytes(key).decode("utf-8")


@cluster.command("train")
@click.option(
    "--spec",
    "spec_json",
    envvar="INFEREDGE_PIPELINE_SPEC",
    required=True,
    help="The InferencePipeline spec as JSON [env: INFEREDGE_PIPELINE_SPEC].",
)
@store_option
@click.option("--plan-key", required=True, help="Store key of the plan (JSON).")
@click.option("--edge-profile-key", required=True)
@click.option("--cloud-profile-key", required=True)
@click.option("--output-prefix", required=True, help="Where weights, exits and evaluation go.")
def train(
    *,
    spec_json: str,
    store: str,
    plan_key: str,
    edge_profile_key: str,
    cloud_profile_key: str,
    output_prefix: str,
) -> None:
    """Train the backbone (unless spec.model.weightsUri) and the plan's exits; calibrate c_thr."""
    from inferedge.core.plan import parse_plan
    from inferedge.core.profile import parse_profile
    from inferedge.core.sweep import DEFAULT_THRESHOLDS
    from inferedge.dnn.data import split_dataset
    from inferedge.dnn.frameworks import get_workflow
    from inferedge.local.evaluation import Criteria, evaluate_plan, write_evaluation
    from inferedge.local.runner import training_schedule
    from inferedge.storage import open_store

    spec = _spec(spec_json)
    workflow = get_workflow(spec.model.framework)
    target = open_store(store)
    plan = parse_plan(_read_text(target, plan_key), plan_key)
    edge = parse_profile(_read_text(target, edge_profile_key), edge_profile_key)
    cloud = parse_profile(_read_text(target, cloud_profile_key), cloud_profile_key)
    data = _dataset(
        spec.dataset.uri or spec.dataset.name, spec.model.input_shape, spec.model.num_classes
    )
    splits = split_dataset(
        data, spec.dataset.val_fraction, spec.dataset.test_fraction, spec.dataset.seed
    )
    seed = spec.dataset.seed
    with tempfile.TemporaryDirectory(prefix="inferedge-train-") as tmp:
        root = Path(tmp)
        weights = _backbone(workflow, spec, data, splits, root / _weights_name(workflow))
        backbone = workflow.load_backbone(weights)
        workflow.check_plan(plan, backbone, plan_key)
        exits = workflow.build_exits(plan, backbone, spec.exits.head, seed)
        if exits:
            result = workflow.train_exits(
                backbone,
                exits,
                splits,
                training_schedule(spec.exits.training),
                seed=seed,
                progress=_progress(f"training {len(exits)} exits"),
            )
            click.echo(f"exits: test accuracy {[f'{a:.2%}' for a in result.test_accuracy]}")
        exits_file = root / _exits_name(workflow)
        workflow.save_exits(exits_file, plan, exits)
        inference = spec.inference
        criteria = Criteria(
            confidence=inference.confidence,
            thresholds=DEFAULT_THRESHOLDS,
            target_accuracy=inference.target_accuracy,
            max_accuracy_drop=inference.max_accuracy_drop,
            objective=inference.objective,
        )
        evaluation = evaluate_plan(
            plan,
            workflow,
            backbone,
            exits,
            profiles=(edge, cloud),
            splits=splits,
            criteria=criteria,
            label=spec.exits.placement,
        )
        report = write_evaluation(evaluation, root / EVALUATION_DIR)
        for path in [weights, exits_file, *report]:
            name = path.relative_to(root).as_posix()
            target.put_file(f"{output_prefix}/{name}", path)
    chosen = evaluation.chosen("test")
    click.echo(
        f"c_thr {evaluation.calibration.threshold:.2f}: {chosen.accuracy:.2%} test accuracy, "
        f"{chosen.offload_rate:.0%} offloaded; wrote {output_prefix}/"
    )


def _weights_name(workflow: Workflow) -> str:
    """The backbone's file name under a training prefix (the export Job reads it back)."""
    return f"backbone{workflow.weights_suffix}"


def _exits_name(workflow: Workflow) -> str:
    return f"exits{workflow.exits_suffix}"


def _backbone(
    workflow: Workflow, spec: InferencePipelineSpec, data: Dataset, splits: Splits, out: Path
) -> Path:
    """The trained backbone's weights file: downloaded if given, else trained here."""
    from inferedge.local.runner import training_schedule

    model = spec.model
    if model.weights_uri:
        return _fetch_object(model.weights_uri, out)
    ref = _model_ref(model.name, model.uri)
    seed = spec.dataset.seed
    backbone = workflow.new_backbone(ref, data.num_classes, model.input_shape, seed)
    result = workflow.train_backbone(
        backbone,
        splits,
        training_schedule(spec.dataset.backbone_training),
        seed=seed,
        progress=_progress(f"training {model.name}"),
    )
    workflow.save_backbone(backbone, out)
    click.echo(f"backbone: test accuracy {result.test_accuracy:.2%}")
    return out


@cluster.command("export")
@store_option
@click.option("--plan-key", required=True, help="Store key of the plan (JSON).")
@click.option("--training-prefix", required=True, help="Where `cluster train` wrote its output.")
@click.option("--namespace", required=True)
@click.option("--pipeline", required=True, help="Pipeline name (a DNS-1123 label).")
def export(
    *, store: str, plan_key: str, training_prefix: str, namespace: str, pipeline: str
) -> None:
    """Export both partitions with their exits and publish them, manifest last (replacing an
    older set of the same plan: retraining keeps the plan's hash)."""
    from inferedge.core.plan import parse_plan
    from inferedge.dnn.frameworks import get_workflow
    from inferedge.local.evaluation import EVALUATION_FILE, load_evaluation
    from inferedge.local.export import export_to_store
    from inferedge.storage import open_store

    target = open_store(store)
    plan = parse_plan(_read_text(target, plan_key), plan_key)
    workflow = get_workflow(plan.model.framework)
    weights, exits_file = _weights_name(workflow), _exits_name(workflow)
    with tempfile.TemporaryDirectory(prefix="inferedge-export-") as tmp:
        root = Path(tmp)
        for name in (weights, exits_file, f"{EVALUATION_DIR}/{EVALUATION_FILE}"):
            target.get_file(f"{training_prefix}/{name}", root / name)
        backbone = workflow.load_backbone(root / weights)
        workflow.check_plan(plan, backbone, plan_key)
        exits = workflow.load_exits(root / exits_file, plan)
        evaluation = load_evaluation(root / EVALUATION_DIR)
        prefix, manifest = export_to_store(
            plan,
            workflow,
            backbone,
            exits,
            target,
            calibration=evaluation.calibration,
            namespace=namespace,
            pipeline=pipeline,
            replace=True,
        )
    size = sum(f.size for f in manifest.files) / MIB
    click.echo(f"published {len(manifest.files)} files ({size:.1f} MiB) under {prefix}/")
