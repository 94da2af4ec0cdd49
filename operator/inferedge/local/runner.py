"""`inferedge run`: one InferencePipeline manifest, every step, on this machine.

The steps are the operator's: each runs as the same `inferedge cluster profile|train|export`
command a Job runs, built from the same typed arguments (`inferedge.api.jobs`) and store keys
(`inferedge.api.keys`), against a local store under the run directory. What differs is only
what a cluster cannot do: the DeviceProfiles' emulation settings are applied while profiling,
and the plan is made here instead of by the operator (with the same function). Afterwards the
run directory holds each step's output for inspection and for the individual commands.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from inferedge.api.convert import pipeline_plan
from inferedge.api.device_profile import DeviceProfile as DeviceProfileResource
from inferedge.api.documents import DocumentError, Documents
from inferedge.api.jobs import ExportJob, JobArgs, ProfileJob, TrainJob
from inferedge.api.keys import (
    plan_store_key,
    profile_store_key,
    profiling_key,
    training_key,
    training_prefix,
)
from inferedge.api.pipeline import InferencePipeline, StorageSpec
from inferedge.core.errors import InferedgeError
from inferedge.core.manifest import Manifest, artifact_prefix, parse_manifest
from inferedge.core.plan import Plan
from inferedge.core.profile import MeasuredProfile, parse_profile
from inferedge.core.progress import ProgressCallback
from inferedge.core.roles import ROLES, Role
from inferedge.dnn.data import Splits
from inferedge.dnn.frameworks import get_workflow
from inferedge.steps.data import pipeline_splits
from inferedge.steps.evaluation import EVALUATION_FILE, Evaluation, load_evaluation
from inferedge.steps.export import read_identity
from inferedge.steps.reporting import Reporter, parse_progress
from inferedge.steps.training import EVALUATION_DIR, exits_name, weights_name
from inferedge.storage import open_store, read_manifest, read_text


@dataclass(frozen=True)
class Prepared:
    """What the preparation steps produced."""

    pipeline: InferencePipeline
    devices: dict[Role, DeviceProfileResource]
    edge: MeasuredProfile
    cloud: MeasuredProfile
    plan: Plan
    evaluation: Evaluation
    """The evaluation with the threshold in effect: the spec's fixed one, else the calibrated."""
    splits: Splits
    store_uri: str
    prefix: str
    manifest: Manifest
    manifest_sha256: str
    """The pin the servers are started with."""
    out: Path


def _device(
    docs: Documents, pipeline: InferencePipeline, role: Role, source: str
) -> DeviceProfileResource:
    spec = pipeline.spec
    ref = spec.edge.reference if role == "edge" else spec.cloud
    field = spec.edge.reference_field() if role == "edge" else "spec.cloud.profile"
    found = docs.profile(ref.profile, pipeline.metadata.namespace, source)
    if found.spec.role != role:
        raise DocumentError(
            f"{source}: {field} {ref.profile!r} is a DeviceProfile of role "
            f"{found.spec.role!r}, expected {role!r}"
        )
    return found


def thread_env(threads: int) -> dict[str, str]:
    """Environment that caps the math libraries of a child process at `threads` threads
    (OpenMP and MKL for torch, TensorFlow's own pools), read when the framework starts."""
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": n,
    }


def run_step(job: JobArgs, reporter: Reporter, extra_env: Mapping[str, str] | None = None) -> None:
    """Run one step as its own `inferedge` process, as a Job would, relaying its news lines
    and drawing its progress lines as bars; a failed step raises its own last line.
    `extra_env` adds to its environment (the thread caps its servers will run under)."""
    command = [sys.executable, "-m", "inferedge", *job.argv()]
    env = {**os.environ, **job.env(), **(extra_env or {})}
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors, ExitStack() as bars:
        child = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True, bufsize=1
        )
        assert child.stdout is not None
        title, bar = "", None
        with child:
            for line in child.stdout:
                progress = parse_progress(line)
                if progress is None:
                    reporter.info(line.rstrip("\n"))
                    continue
                if progress.title != title or bar is None:
                    bars.close()
                    title, bar = progress.title, _open_bar(bars, reporter, progress.title)
                bar(progress.done, progress.total)
        errors.seek(0)
        lines = [line.strip() for line in errors if line.strip()]
    if child.returncode != 0:
        last = lines[-1].removeprefix("error: ") if lines else f"exit code {child.returncode}"
        raise InferedgeError(f"inferedge {' '.join(job.command)}: {last}")


def _open_bar(bars: ExitStack, reporter: Reporter, title: str) -> ProgressCallback:
    return bars.enter_context(reporter.progress(title))


def prepare(
    docs: Documents,
    pipeline: InferencePipeline,
    out: Path,
    reporter: Reporter,
    source: str,
    *,
    thresholds: tuple[float, ...] = (),
    threads: int | None = None,
) -> Prepared:
    """Run every step up to a committed artifact set in a store under `out/store`, and copy
    each step's output under `out`. `thresholds` are swept for the reports besides the
    calibration grid and the pipeline's fixed threshold. `threads` caps the math libraries of
    the profiling steps as the servers' will be (`--server-threads`): a profile measured on
    more threads than its servers use predicts them too fast."""
    devices = {role: _device(docs, pipeline, role, source) for role in ROLES}
    out.mkdir(parents=True, exist_ok=True)
    store = open_store(str((out / "store").resolve()))
    spec = pipeline.spec.model_copy(update={"storage": StorageSpec(uri=store.uri)})
    namespace, name = pipeline.metadata.namespace, pipeline.metadata.name
    splits = pipeline_splits(spec)

    profiles: dict[Role, MeasuredProfile] = {}
    profile_keys: dict[Role, str] = {}
    for role, device in devices.items():
        key = profile_store_key(
            namespace, device.metadata.name, profiling_key(spec, device.spec, threads=threads)
        )
        run_step(
            ProfileJob.of(spec, device.metadata.name, device.spec, key, emulated=True),
            reporter,
            None if threads is None else thread_env(threads),
        )
        profiles[role], profile_keys[role] = parse_profile(read_text(store, key), key), key
        (out / f"{role}-profile.json").write_text(read_text(store, key), encoding="utf-8")

    plan = pipeline_plan(spec, devices["edge"].spec, profiles["edge"], profiles["cloud"])
    plan_key = plan_store_key(namespace, name, plan.hash)
    store.put_bytes(plan_key, (plan.model_dump_json(indent=2) + "\n").encode())
    (out / "plan.json").write_text(read_text(store, plan_key), encoding="utf-8")
    reporter.info(
        f"plan {plan.hash}: split after cut {plan.split} ({plan.split_name}), exits at "
        f"{[e.cut_index for e in plan.exits]}, predicted {plan.final_latency_ms:.1f} ms full path"
    )

    trained = training_prefix(namespace, name, training_key(spec, plan.hash))
    train = TrainJob(
        spec=spec,
        store=store.uri,
        plan_key=plan_key,
        edge_profile_key=profile_keys["edge"],
        cloud_profile_key=profile_keys["cloud"],
        output_prefix=trained,
        report_thresholds=tuple(sorted(set(thresholds))),
    )
    run_step(train, reporter)
    export = ExportJob(
        store=store.uri,
        plan_key=plan_key,
        training_prefix=trained,
        namespace=namespace,
        pipeline=name,
    )
    run_step(export, reporter)

    identity = read_identity(store, trained)
    prefix = artifact_prefix(namespace, name, plan.hash, identity.set_id)
    # The run wrote this set itself, so the digest read here is the pin its servers are given.
    manifest_bytes = read_manifest(store, prefix)
    manifest = parse_manifest(manifest_bytes, f"{store.uri}/{prefix}")
    workflow = get_workflow(spec.model.framework)
    for file in (weights_name(workflow), exits_name(workflow)):
        store.get_file(f"{trained}/{file}", out / file)
    report = out / "report"
    for key in store.list(f"{trained}/{EVALUATION_DIR}/"):
        store.get_file(key, report / key.rsplit("/", 1)[-1])
    evaluation = load_evaluation(report / EVALUATION_FILE)
    fixed = spec.inference.threshold
    if fixed is not None:
        evaluation = evaluation.with_threshold(fixed)
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
        manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
        out=out,
    )
