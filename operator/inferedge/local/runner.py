"""`inferedge run`: one InferencePipeline manifest, every step, on this machine.

This module holds the steps up to published artifacts: data, backbone, the two device profiles
(emulated as each DeviceProfile's `emulation` says), the plan, exit training, calibration and
export into a local store. Each step writes its output under the run directory, so a run can be
inspected (and its files fed to the individual `inferedge` commands) afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from inferedge.api.convert import plan_request
from inferedge.api.device_profile import DeviceProfile as DeviceProfileResource
from inferedge.api.documents import Documents, ManifestFileError
from inferedge.api.pipeline import InferencePipeline, TrainingSpec
from inferedge.core.manifest import Manifest
from inferedge.core.plan import Plan
from inferedge.core.planner import make_plan
from inferedge.core.profile import DeviceProfile, dump_profile
from inferedge.core.sweep import DEFAULT_THRESHOLDS
from inferedge.dnn.data import Splits, split_dataset
from inferedge.dnn.frameworks import get_backend, get_workflow
from inferedge.dnn.protocols import ProfileRequest, Schedule
from inferedge.local.data import resolve_dataset
from inferedge.local.evaluation import Criteria, Evaluation, evaluate_plan, write_evaluation
from inferedge.local.export import export_to_store
from inferedge.storage import open_store

MIB = 1024 * 1024
Progress = Callable[[int, int], None]


class Reporter(Protocol):
    """Where a run tells the user what it is doing."""

    def info(self, text: str) -> None:
        """One line of news."""

    def progress(self, title: str) -> AbstractContextManager[Progress]:
        """A progress bar for one long step; yields its `progress(done, total)` callback."""


@dataclass(frozen=True)
class Prepared:
    """What the preparation steps produced."""

    pipeline: InferencePipeline
    devices: dict[str, DeviceProfileResource]
    edge: DeviceProfile
    cloud: DeviceProfile
    plan: Plan
    evaluation: Evaluation
    splits: Splits
    store_uri: str
    prefix: str
    manifest: Manifest
    out: Path


def _device(
    docs: Documents, pipeline: InferencePipeline, role: str, source: str
) -> DeviceProfileResource:
    ref = pipeline.spec.edge if role == "edge" else pipeline.spec.cloud
    found = docs.profile(ref.profile, pipeline.metadata.namespace, source)
    if found.spec.role != role:
        raise ManifestFileError(
            f"{source}: spec.{role}.profile {ref.profile!r} is a DeviceProfile of role "
            f"{found.spec.role!r}, expected {role!r}"
        )
    return found


def training_schedule(training: TrainingSpec) -> Schedule:
    """A spec's training schedule, as the workflows take it."""
    return Schedule(
        epochs=training.epochs,
        batch_size=training.batch_size,
        learning_rate=training.learning_rate,
        patience=training.patience,
    )


def prepare(
    docs: Documents,
    pipeline: InferencePipeline,
    out: Path,
    reporter: Reporter,
    source: str,
    *,
    thresholds: tuple[float, ...] = (),
) -> Prepared:
    """Run every step up to committed artifacts, writing each step's output under `out`.

    The evaluation sweeps the default thresholds, the pipeline's fixed one and `thresholds`.
    """
    spec = pipeline.spec
    devices = {role: _device(docs, pipeline, role, source) for role in ("edge", "cloud")}
    shape = spec.model.input_shape
    if len(shape) != 3:
        raise ManifestFileError(f"{source}: spec.model.inputShape must be [C, H, W], got {shape}")
    out.mkdir(parents=True, exist_ok=True)
    data_ref = spec.dataset.uri or spec.dataset.name
    data = resolve_dataset(data_ref, (shape[0], shape[1], shape[2]), spec.model.num_classes)
    splits = split_dataset(
        data, spec.dataset.val_fraction, spec.dataset.test_fraction, spec.dataset.seed
    )
    reporter.info(
        f"data: {data.name}, {len(splits.train)} train / {len(splits.val)} val / "
        f"{len(splits.test)} test samples, {data.num_classes} classes"
    )
    seed = spec.dataset.seed
    workflow = get_workflow(spec.model.framework)
    weights = out / f"backbone{workflow.weights_suffix}"
    model = workflow.new_backbone(spec.model.name, data.num_classes, shape, seed)
    with reporter.progress(f"training {spec.model.name} on {data.name}") as progress:
        trained = workflow.train_backbone(
            model,
            splits,
            training_schedule(spec.dataset.backbone_training),
            seed=seed,
            progress=progress,
        )
    workflow.save_backbone(model, weights)
    reporter.info(
        f"backbone: test accuracy {trained.test_accuracy:.2%} after {trained.epochs} "
        f"epochs ({trained.seconds:.0f} s)"
    )
    backbone = workflow.load_backbone(weights)

    profiles: dict[str, DeviceProfile] = {}
    backend = get_backend(spec.model.framework)
    for role, device in devices.items():
        settings = device.spec.profiling
        emulation = device.spec.emulation
        request = ProfileRequest(
            model_ref=spec.model.name,
            num_classes=data.num_classes,
            input_shape=shape,
            batch_sizes=settings.batch_sizes,
            warmup=settings.warmup,
            repeats=settings.repeats,
            device_name=device.metadata.name,
            emulate_slowdown=emulation.slowdown,
            memory_bytes=emulation.memory_mib * MIB if emulation.memory_mib else None,
        )
        with reporter.progress(f"profiling {role} ({device.metadata.name})") as progress:
            profiles[role] = backend.profile(request, progress)
        (out / f"{role}-profile.json").write_text(dump_profile(profiles[role]))

    plan = make_plan(profiles["edge"], profiles["cloud"], plan_request(spec, devices["edge"].spec))
    (out / "plan.json").write_text(plan.model_dump_json(indent=2) + "\n")
    reporter.info(
        f"plan {plan.hash}: split after cut {plan.split} ({plan.split_name}), exits at "
        f"{[e.cut_index for e in plan.exits]}, predicted {plan.final_latency_ms:.1f} ms full path"
    )

    exits = workflow.build_exits(plan, backbone, spec.exits.head, seed)
    if exits:
        with reporter.progress(f"training {len(exits)} exits") as progress:
            workflow.train_exits(
                backbone,
                exits,
                splits,
                training_schedule(spec.exits.training),
                seed=seed,
                progress=progress,
            )
    workflow.save_exits(out / f"exits{workflow.exits_suffix}", plan, exits)

    inference = spec.inference
    fixed = inference.threshold
    criteria = Criteria(
        confidence=inference.confidence,
        thresholds=tuple(
            sorted({*DEFAULT_THRESHOLDS, *thresholds, *((fixed,) if fixed is not None else ())})
        ),
        target_accuracy=inference.target_accuracy,
        max_accuracy_drop=inference.max_accuracy_drop,
        objective=inference.objective,
    )
    evaluation = evaluate_plan(
        plan,
        workflow,
        backbone,
        exits,
        profiles=(profiles["edge"], profiles["cloud"]),
        splits=splits,
        criteria=criteria,
        label=spec.exits.placement,
    )
    if fixed is not None:
        evaluation = evaluation.with_threshold(fixed)
    write_evaluation(evaluation, out / "report")
    chosen = evaluation.chosen("test")
    reporter.info(
        f"calibration: c_thr {evaluation.calibration.threshold:.2f} gives {chosen.accuracy:.2%} "
        f"test accuracy, {chosen.offload_rate:.0%} offloaded, {chosen.latency_ms:.1f} ms expected"
    )

    store = open_store(str(out / "store"))
    prefix, manifest = export_to_store(
        plan,
        workflow,
        backbone,
        exits,
        store,
        calibration=evaluation.calibration,
        namespace=pipeline.metadata.namespace,
        pipeline=pipeline.metadata.name,
        replace=True,
    )
    reporter.info(f"artifacts: {len(manifest.files)} files under {store.uri}/{prefix}")
    return Prepared(
        pipeline=pipeline,
        devices=devices,
        edge=profiles["edge"],
        cloud=profiles["cloud"],
        plan=plan,
        evaluation=evaluation,
        splits=splits,
        store_uri=store.uri,
        prefix=prefix,
        manifest=manifest,
        out=out,
    )
