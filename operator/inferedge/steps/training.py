"""The training step: the backbone (given, or trained here), the plan's exits, their
evaluation and calibration, and the identity of the set they make."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from inferedge.api.jobs import TrainJob
from inferedge.api.keys import ArtifactIdentity, identity_key, training_key
from inferedge.api.model_spec import TrainingSpec
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.core.digest import sha256_file
from inferedge.core.plan import Plan, parse_plan
from inferedge.core.profile import parse_profile
from inferedge.core.resources import head_estimate, input_estimate
from inferedge.dnn.data import Splits
from inferedge.dnn.frameworks import get_workflow
from inferedge.dnn.protocols import Schedule, Workflow
from inferedge.steps.data import pipeline_splits
from inferedge.steps.evaluation import Criteria, Evaluation, evaluate_plan, write_evaluation
from inferedge.steps.memory import require
from inferedge.steps.profile import model_ref
from inferedge.steps.reporting import Reporter
from inferedge.steps.space import write_space
from inferedge.storage import fetch_object, open_store, read_text

EVALUATION_DIR = "evaluation"


def weights_name(workflow: Workflow) -> str:
    """The backbone's file name under a training prefix."""
    return f"backbone{workflow.weights_suffix}"


def exits_name(workflow: Workflow) -> str:
    """The exit heads' file name under a training prefix."""
    return f"exits{workflow.exits_suffix}"


def training_schedule(training: TrainingSpec) -> Schedule:
    """A spec's training schedule, as the workflows take it."""
    return Schedule(
        epochs=training.epochs,
        batch_size=training.batch_size,
        learning_rate=training.learning_rate,
        patience=training.patience,
    )


@dataclass(frozen=True)
class Training:
    """What the training step wrote under its output prefix."""

    identity: ArtifactIdentity
    evaluation: Evaluation


def backbone_weights(
    workflow: Workflow,
    spec: InferencePipelineSpec,
    splits: Splits,
    out: Path,
    reporter: Reporter,
) -> Path:
    """The backbone's weights at `out`: copied from `spec.model.weightsUri` when given, taken
    from the stored model at `spec.model.uri` (a saved model carries its trained weights), and
    only otherwise trained here from the zoo."""
    model = spec.model
    if model.weights_uri:
        source = fetch_object(model.weights_uri, out)
        if source != out:
            shutil.copyfile(source, out)
        reporter.info(f"backbone: weights from {model.weights_uri}, not trained")
        return out
    seed = spec.dataset.seed
    ref = model_ref(model.name, model.uri)
    backbone = workflow.new_backbone(ref, splits.train.num_classes, model.input_shape, seed)
    if model.uri:
        workflow.save_backbone(backbone, out)
        reporter.info(f"backbone: the weights stored with {model.uri}, not trained")
        return out
    dataset = splits.train.name.partition(":")[0]
    with reporter.progress(f"training {model.name} on {dataset}") as progress:
        trained = workflow.train_backbone(
            backbone,
            splits,
            training_schedule(spec.dataset.backbone_training),
            seed=seed,
            progress=progress,
        )
    workflow.save_backbone(backbone, out)
    reporter.info(
        f"backbone: test accuracy {trained.test_accuracy:.2%} after {trained.epochs} epochs "
        f"({trained.seconds:.0f} s)"
    )
    return out


def check_training_memory(spec: InferencePipelineSpec, plan: Plan) -> None:
    """Refuse, before any model is built, input shapes, batch sizes and exit heads whose
    training cannot fit in this host's memory."""
    for schedule, what in (
        (spec.dataset.backbone_training, "training the backbone"),
        (spec.exits.training, "training the exits"),
    ):
        batch = schedule.batch_size
        require(
            3 * input_estimate(plan.model.input_shape, batch),  # forward, backward, optimiser
            f"{what} at input shape {list(plan.model.input_shape)} and batch {batch}",
        )
    layers = spec.exits.head.layers
    if layers is None:
        return  # the presets are inferedge's own, sized to their exit
    for point in plan.exits:
        where = f"spec.exits.head at cut {point.cut_index} ({point.name})"
        need = head_estimate(
            layers, point.shape, plan.model.num_classes, spec.exits.training.batch_size, where
        )
        require(need, f"{where}, trained at batch {spec.exits.training.batch_size},")


def run_training(job: TrainJob, reporter: Reporter) -> Training:
    """Train what `job.spec` asks for against the stored plan and profiles, and write the
    weights, exits, evaluation and identity under `job.output_prefix`."""
    spec = job.spec
    workflow = get_workflow(spec.model.framework)
    store = open_store(job.store)
    plan = parse_plan(read_text(store, job.plan_key), job.plan_key)
    edge = parse_profile(read_text(store, job.edge_profile_key), job.edge_profile_key)
    cloud = parse_profile(read_text(store, job.cloud_profile_key), job.cloud_profile_key)
    check_training_memory(spec, plan)
    splits = pipeline_splits(spec)
    dataset = splits.train.name.partition(":")[0]
    reporter.info(
        f"data: {dataset}, {len(splits.train)} train / {len(splits.val)} val / "
        f"{len(splits.test)} test samples, {splits.train.num_classes} classes"
    )
    seed = spec.dataset.seed
    with tempfile.TemporaryDirectory(prefix="inferedge-train-") as tmp:
        root = Path(tmp)
        weights = backbone_weights(workflow, spec, splits, root / weights_name(workflow), reporter)
        backbone = workflow.load_backbone(weights)
        workflow.check_plan(plan, backbone, job.plan_key)
        exits = workflow.build_exits(plan, backbone, spec.exits.head, seed)
        if exits:
            with reporter.progress(f"training {len(exits)} exits") as progress:
                result = workflow.train_exits(
                    backbone,
                    exits,
                    splits,
                    training_schedule(spec.exits.training),
                    seed=seed,
                    progress=progress,
                )
            reporter.info(f"exits: test accuracy {[f'{a:.2%}' for a in result.test_accuracy]}")
        exits_file = root / exits_name(workflow)
        workflow.save_exits(exits_file, plan, exits)
        evaluation = evaluate_plan(
            plan,
            workflow,
            backbone,
            exits,
            profiles=(edge, cloud),
            splits=splits,
            criteria=Criteria.of(spec.inference, job.report_thresholds),
            label=spec.exits.placement,
        )
        report = write_evaluation(evaluation, root / EVALUATION_DIR)
        if spec.adaptation is not None:
            report.append(
                write_space(
                    plan,
                    workflow=workflow,
                    backbone=backbone,
                    exits=exits,
                    profiles=(edge, cloud),
                    splits=splits,
                    spec=spec,
                    out_dir=root / EVALUATION_DIR,
                )
            )
        identity = ArtifactIdentity.of(
            plan.hash, training_key(spec, plan.hash), sha256_file(weights)
        )
        for path in [weights, exits_file, *report]:
            store.put_file(f"{job.output_prefix}/{path.relative_to(root).as_posix()}", path)
    # The identity goes last: a reader that finds it finds everything it describes.
    identity_bytes = (identity.model_dump_json(indent=2) + "\n").encode()
    store.put_bytes(identity_key(job.output_prefix), identity_bytes)
    chosen = evaluation.chosen("test")
    reporter.info(
        f"calibration: c_thr {evaluation.calibration.threshold:.2f} gives {chosen.accuracy:.2%} "
        f"test accuracy, {chosen.offload_rate:.0%} offloaded, {chosen.latency_ms:.1f} ms expected"
    )
    return Training(identity=identity, evaluation=evaluation)
