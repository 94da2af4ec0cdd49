"""A stand-in for the kubelet and the Job/Deployment controllers.

It polls the emulated API and does what the real cluster would, through the same API. By
default no torch runs: a Job's "pod" writes what the real `inferedge cluster ...` command would
write to the store (a synthetic profile, an identity record, a committed artifact set built from
the stored plan) and the Job is marked Complete. With `execute=True` it runs the Job's container
for real: the same `inferedge` command with the container's args and env, as a process on this
machine. A Deployment's pods become ready. Jobs can be held (kept running) or failed on demand.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inferedge.api.jobs import ExportJob, JobArgs, ProfileJob, TrainJob
from inferedge.api.keys import ArtifactIdentity, identity_key, training_key
from inferedge.core.manifest import (
    ArtifactFile,
    Calibration,
    Manifest,
    Step,
    artifact_prefix,
    dump_manifest,
    part_steps,
)
from inferedge.core.plan import parse_plan
from inferedge.core.profile import dump_profile
from inferedge.core.synthetic import synthetic_profile
from inferedge.storage import ArtifactStore, discard, is_committed, publish
from tests.controller.cluster import Api, ApiError, ns_path

CALIBRATED_THRESHOLD = 0.8
CALIBRATED_OFFLOAD = 0.25


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def step_args(container: dict[str, Any]) -> JobArgs:
    """The typed arguments a Job's container passes its step, parsed as the CLI parses them."""
    args: list[str] = container["args"]
    steps = {t.command: t for t in (ProfileJob, TrainJob, ExportJob)}
    step = steps[(args[0], args[1])]
    values: dict[str, object] = {
        flag.removeprefix("--").replace("-", "_"): value
        for flag, value in zip(args[2::2], args[3::2], strict=True)
    }
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    for name in step.model_fields:
        var = step.env_name(name)
        if var is not None and var in env:
            values[name] = env[var]
    return step.parse(values)


def model_seed(model: str) -> int:
    """Both device classes profile the same made-up model for one model name."""
    return int(hashlib.sha256(model.encode()).hexdigest()[:6], 16)


class Kubelet:
    """Runs Jobs and readies Deployments of one namespace in a background thread."""

    def __init__(
        self,
        api: Api,
        open_store: Callable[[], ArtifactStore],
        *,
        speeds: dict[str, float],
        namespace: str = "default",
        execute: bool = False,
    ) -> None:
        self.api = api
        self.open_store = open_store
        self.speeds = speeds  # ms per GFLOP by DeviceProfile name
        self.namespace = namespace
        self.execute = execute
        self.hold: set[str] = set()  # Job components (profile, train, export) kept running
        self.fail: set[str] = set()  # Job components that fail
        self.ready_deployments = True
        self.ran: list[str] = []  # names of the Jobs that ran, in order
        self.logs: list[str] = []  # output of the Jobs run for real
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            # An object may vanish between list and patch: the next round sees the new state.
            with contextlib.suppress(ApiError):
                self.step()
            self._stop.wait(0.05)  # the stand-in's own polling period

    def step(self) -> None:
        """One round: finish runnable Jobs, ready Deployments."""
        for job in self.api.items(ns_path("jobs", self.namespace)):
            self._job(job)
        if self.ready_deployments:
            for deployment in self.api.items(ns_path("deployments", self.namespace)):
                self._deployment(deployment)

    def _job(self, job: dict[str, Any]) -> None:
        status = job.get("status") or {}
        if any(c.get("status") == "True" for c in status.get("conditions") or []):
            return
        component = job["metadata"]["labels"].get("app.kubernetes.io/component", "")
        name = job["metadata"]["name"]
        if component in self.hold:
            if not status.get("active"):
                self._patch_job(name, {"active": 1, "startTime": now()})
            return
        if component in self.fail:
            condition = {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": now(),
            }
            self._patch_job(name, {"failed": 1, "conditions": [condition]})
            return
        (container,) = job["spec"]["template"]["spec"]["containers"]
        if self.execute:
            failure = self._run(container)
            if failure is not None:
                condition = {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": failure,
                    "lastTransitionTime": now(),
                }
                self._patch_job(name, {"failed": 1, "conditions": [condition]})
                return
        else:
            args = step_args(container)
            store = self.open_store()
            if isinstance(args, ProfileJob):
                self._profile(store, args)
            elif isinstance(args, TrainJob):
                self._train(store, args)
            elif isinstance(args, ExportJob):
                self._export(store, args)
        self._pod(name)
        self.ran.append(name)
        condition = {"type": "Complete", "status": "True", "lastTransitionTime": now()}
        self._patch_job(name, {"succeeded": 1, "completionTime": now(), "conditions": [condition]})

    def _patch_job(self, name: str, status: dict[str, Any]) -> None:
        self.api.merge(ns_path("jobs", self.namespace, name) + "/status", {"status": status})

    def _pod(self, job_name: str) -> None:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{job_name}-",
                "labels": {"batch.kubernetes.io/job-name": job_name},
            },
            "spec": {"nodeName": f"node-of-{job_name}", "containers": []},
        }
        self.api.create(ns_path("pods", self.namespace), pod)

    def _run(self, container: dict[str, Any]) -> str | None:
        """Run the container's command here; None when it succeeded, else its last line."""
        env = {**os.environ}
        env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
        env.pop("HOME")  # the pod's emptyDir; this machine's HOME serves the same purpose
        env.pop("MPLCONFIGDIR")
        done = subprocess.run(
            [sys.executable, "-m", container["command"][0], *container["args"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        self.logs.append(done.stdout + done.stderr)
        if done.returncode == 0:
            return None
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit code {done.returncode}"

    def _profile(self, store: ArtifactStore, args: ProfileJob) -> None:
        profile = synthetic_profile(
            12,
            seed=model_seed(args.model),
            ms_per_gflop=self.speeds[args.device_name],
            device_name=args.device_name,
        )
        store.put_bytes(args.key, dump_profile(profile).encode())

    def _train(self, store: ArtifactStore, args: TrainJob) -> None:
        plan = parse_plan(store.get_bytes(args.plan_key).decode(), args.plan_key)
        weights = hashlib.sha256(f"weights of {args.output_prefix}".encode()).hexdigest()
        identity = ArtifactIdentity.of(plan.hash, training_key(args.spec, plan.hash), weights)
        store.put_bytes(identity_key(args.output_prefix), identity.model_dump_json().encode())

    def _export(self, store: ArtifactStore, args: ExportJob) -> None:
        plan = parse_plan(store.get_bytes(args.plan_key).decode(), args.plan_key)
        record = store.get_bytes(identity_key(args.training_prefix))
        identity = ArtifactIdentity.model_validate_json(record)
        prefix = artifact_prefix(args.namespace, args.pipeline, plan.hash, identity.set_id)
        publish_fake_set(store, prefix, plan, Path(f"/tmp/kubelet-{threading.get_ident()}"))

    def _deployment(self, deployment: dict[str, Any]) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        replicas = int(spec.get("replicas", 1))
        want = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }
        status = deployment.get("status") or {}
        if any(status.get(k) != v for k, v in want.items()):
            path = ns_path("deployments", self.namespace, meta["name"]) + "/status"
            self.api.merge(path, {"status": want})


def publish_fake_set(store: ArtifactStore, prefix: str, plan: Any, scratch: Path) -> Manifest:
    """A committed artifact set for `plan` whose files are placeholders (what export would
    publish, minus real weights)."""
    scratch.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    entries: list[ArtifactFile] = []
    parts: dict[str, list[Step]] = {}
    exits = {e.cut_index: e for e in plan.exits}
    for part in ("edge", "cloud"):
        parts[part] = []
        for start, end, at_exit, final in part_steps(plan, part):
            segment = f"{part}/segment_{start}_{end}.pt2"
            head = f"{part}/head_{end}.pt2" if at_exit else None
            for name, kind in ((segment, "segment"), (head, "head")):
                if name is None:
                    continue
                path = scratch / name.replace("/", "_")
                path.write_bytes(f"placeholder {prefix} {name}".encode())
                files[name] = path
                shape = exits[end].shape if kind == "head" else (1,)
                entries.append(
                    ArtifactFile(
                        name=name,
                        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                        size=path.stat().st_size,
                        kind=kind,  # type: ignore[arg-type]
                        input_shape=shape,
                        output_shape=(1,),
                    )
                )
            parts[part].append(Step(start=start, end=end, segment=segment, head=head, final=final))
    manifest = Manifest(
        created_at=now(),
        plan=plan,
        versions={"inferedge": "test"},
        framework="torch",
        format="placeholder",
        files=tuple(entries),
        edge=tuple(parts["edge"]),
        cloud=tuple(parts["cloud"]),
        calibration=Calibration(
            threshold=CALIBRATED_THRESHOLD,
            split="test",
            accuracy=0.95,
            exit_accuracy={e.cut_index: 0.9 for e in plan.exits},
            expected_latency_ms=10.0,
            offload_rate=CALIBRATED_OFFLOAD,
        ),
    )
    if is_committed(store, prefix):
        discard(store, prefix)  # what `cluster export` does: retraining keeps the plan hash
    publish(store, prefix, files, dump_manifest(manifest))
    return manifest
