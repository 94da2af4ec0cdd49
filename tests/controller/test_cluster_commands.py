"""The Jobs' commands, run for real (torch and Keras) exactly as the builders write them into
the pods.

The operator tests stand in for these Jobs; this test runs the commands themselves on a tiny
model, in the order the operator starts them, with a local store: profile both device classes,
plan as the operator does, train and calibrate, export, then verify the committed set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from inferedge.api import keys
from inferedge.api.convert import plan_request
from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.keys import parse_identity
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.controller import jobs as job_builders
from inferedge.controller import pods
from inferedge.core.digest import sha256_file
from inferedge.core.manifest import artifact_prefix, parse_manifest
from inferedge.core.planner import make_plan
from inferedge.core.profile import parse_profile
from inferedge.storage import LocalStore
from tests.clitools import RunCli

IMAGES = pods.Images()


def _run(run_cli: RunCli, job: dict[str, Any]) -> str:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {**os.environ}
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    env.pop("HOME")  # the pod's emptyDir; this machine's HOME serves the same purpose
    result = run_cli(*container["args"], env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("framework", "model"),
    [("torch", "small_resnet"), ("tensorflow", "small_resnet")],
)
def test_profile_train_and_export_commands_as_the_jobs_run_them(
    tmp_path: Path, run_cli: RunCli, framework: str, model: str
) -> None:
    store_dir = tmp_path / "store"
    spec = InferencePipelineSpec.model_validate(
        {
            "model": {"name": model, "framework": framework, "inputShape": [3, 16, 16]},
            "dataset": {"backboneTraining": {"epochs": 1}},
            "edge": {"profile": "jetson"},
            "cloud": {"profile": "cpu"},
            # Both "devices" are this machine: the always-feasible strategy keeps timing noise
            # from making the plan infeasible.
            "partitioning": {"strategy": "min-latency"},
            "exits": {"edge": 1, "cloud": 1, "training": {"epochs": 1}},
            "storage": {"uri": str(store_dir)},
        }
    )
    fast = {"profiling": {"repeats": 1, "warmup": 0}}
    devices = {
        "jetson": DeviceProfileSpec.model_validate({"role": "edge", **fast}),
        "cpu": DeviceProfileSpec.model_validate({"role": "cloud", **fast}),
    }
    profile_keys = {}
    for name, device in devices.items():
        owner = {
            "apiVersion": "inferedge.io/v1alpha1",
            "kind": "DeviceProfile",
            "metadata": {"name": name, "namespace": "ns", "uid": "u"},
        }
        key = keys.profiling_key(spec, device)
        _run(
            run_cli,
            job_builders.build_profiling_job(
                owner=owner, device=device, spec=spec, key=key, images=IMAGES
            ),
        )
        profile_keys[name] = keys.profile_store_key("ns", name, key)

    store = LocalStore(store_dir)
    edge, cloud = (
        parse_profile(store.get_bytes(profile_keys[n]).decode(), n) for n in ("jetson", "cpu")
    )
    plan = make_plan(edge, cloud, plan_request(spec, devices["jetson"]))
    plan_key = keys.plan_store_key("ns", "digits", plan.hash)
    store.put_bytes(plan_key, plan.model_dump_json().encode())
    training_key = keys.training_key(spec, plan.hash)
    inputs = job_builders.TrainingInputs(
        training_key=training_key,
        plan_key=plan_key,
        edge_profile_key=profile_keys["jetson"],
        cloud_profile_key=profile_keys["cpu"],
        output_prefix=keys.training_prefix("ns", "digits", training_key),
    )
    owner = {
        "apiVersion": "inferedge.io/v1alpha1",
        "kind": "InferencePipeline",
        "metadata": {"name": "digits", "namespace": "ns", "uid": "u"},
    }
    built = dict(owner=owner, spec=spec, cloud=devices["cpu"], inputs=inputs, images=IMAGES)
    assert "c_thr" in _run(run_cli, job_builders.build_training_job(**built))  # type: ignore[arg-type]
    assert "published" in _run(run_cli, job_builders.build_export_job(**built))  # type: ignore[arg-type]
    suffixes = {"torch": (".pt", ".pt"), "tensorflow": (".weights.h5", ".npz")}[framework]

    identity = parse_identity(store.get_bytes(keys.identity_key(inputs.output_prefix)), "identity")
    assert identity.plan_hash == plan.hash
    assert identity.weights_sha256 == sha256_file(
        store_dir / inputs.output_prefix / f"backbone{suffixes[0]}"
    )
    prefix = artifact_prefix("ns", "digits", plan.hash, identity.set_id)
    manifest = parse_manifest(store.get_bytes(f"{prefix}/manifest.json"), prefix)
    assert manifest.calibration is not None
    assert manifest.plan.hash == plan.hash
    assert manifest.framework == framework
    # The training Job's output, in the framework's own formats, is what the export Job read.
    trained = set(store.list(inputs.output_prefix))
    for name, suffix in zip(("backbone", "exits"), suffixes, strict=True):
        assert f"{inputs.output_prefix}/{name}{suffix}" in trained
    verified = run_cli("verify", "--store", str(store_dir), "--prefix", prefix)
    assert verified.returncode == 0, verified.stderr
    # A retried export Job finds its set committed and keeps it.
    again = _run(run_cli, job_builders.build_export_job(**built))  # type: ignore[arg-type]
    assert "already published" in again
    assert parse_manifest(store.get_bytes(f"{prefix}/manifest.json"), prefix) == manifest
