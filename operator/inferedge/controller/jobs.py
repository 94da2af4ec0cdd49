"""The pipeline's Jobs: each runs one step (`inferedge cluster ...`) with typed arguments.

The arguments are the steps' own declared values (`inferedge.api.jobs`), rendered here into a
container's args and env; `inferedge run` renders the same values into its child processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.jobs import ExportJob, JobArgs, ProfileJob, TrainJob
from inferedge.api.keys import profile_store_key
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.controller import naming
from inferedge.controller.pods import (
    Images,
    KubeObject,
    build_container,
    build_job,
    container_resources,
    scheduling,
    store_env,
)


def _env(args: JobArgs) -> list[dict[str, Any]]:
    return [{"name": name, "value": value} for name, value in sorted(args.env().items())]


def build_profiling_job(
    *,
    owner: Mapping[str, Any],
    device: DeviceProfileSpec,
    spec: InferencePipelineSpec,
    key: str,
    images: Images,
) -> KubeObject:
    """The Job that profiles one model on one DeviceProfile's nodes (owned by the profile)."""
    meta = owner["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    args = ProfileJob.of(
        spec, name, device, profile_store_key(namespace, name, key), emulated=False
    )
    container = build_container(
        "profile",
        images.for_role(device.role, spec.model.framework),
        args=args.argv(),
        env=[*_env(args), *store_env(spec.storage)],
        resources=container_resources(device),
        pull_policy=images.pull_policy,
    )
    return build_job(
        name=naming.profile_job_name(name, key),
        namespace=namespace,
        owner=owner,
        labels=naming.profile_labels(name, key),
        container=container,
        placement=scheduling(device),
        backoff_limit=2,
    )


@dataclass(frozen=True)
class TrainingInputs:
    """Store keys a training and export run reads and writes."""

    training_key: str
    plan_key: str
    edge_profile_key: str
    cloud_profile_key: str
    output_prefix: str

    def train(self, spec: InferencePipelineSpec) -> TrainJob:
        """The training step's arguments."""
        return TrainJob(
            spec=spec,
            store=spec.storage.uri,
            plan_key=self.plan_key,
            edge_profile_key=self.edge_profile_key,
            cloud_profile_key=self.cloud_profile_key,
            output_prefix=self.output_prefix,
        )

    def export(self, spec: InferencePipelineSpec, namespace: str, pipeline: str) -> ExportJob:
        """The export step's arguments."""
        return ExportJob(
            store=spec.storage.uri,
            plan_key=self.plan_key,
            training_prefix=self.output_prefix,
            namespace=namespace,
            pipeline=pipeline,
        )


def _pipeline_job(
    *,
    owner: Mapping[str, Any],
    spec: InferencePipelineSpec,
    cloud: DeviceProfileSpec,
    images: Images,
    name: str,
    component: str,
    args: JobArgs,
    backoff_limit: int,
    key: str,
) -> KubeObject:
    meta = owner["metadata"]
    labels = {**naming.pipeline_labels(meta["name"], component), naming.KEY_LABEL: key}
    container = build_container(
        component,
        images.for_role("cloud", spec.model.framework),
        args=args.argv(),
        env=[*_env(args), *store_env(spec.storage)],
        resources=container_resources(cloud),
        pull_policy=images.pull_policy,
    )
    # Training runs where the cloud part runs: that device class has the compute.
    return build_job(
        name=name,
        namespace=meta["namespace"],
        owner=owner,
        labels=labels,
        container=container,
        placement=scheduling(cloud),
        backoff_limit=backoff_limit,
    )


def build_training_job(
    *,
    owner: Mapping[str, Any],
    spec: InferencePipelineSpec,
    cloud: DeviceProfileSpec,
    inputs: TrainingInputs,
    images: Images,
) -> KubeObject:
    """The Job that trains the backbone (unless given) and the exits, and calibrates c_thr."""
    names = naming.PipelineNames(owner["metadata"]["name"])
    return _pipeline_job(
        owner=owner,
        spec=spec,
        cloud=cloud,
        images=images,
        name=names.train(inputs.training_key),
        component="train",
        args=inputs.train(spec),
        backoff_limit=1,
        key=inputs.training_key,
    )


def build_export_job(
    *,
    owner: Mapping[str, Any],
    spec: InferencePipelineSpec,
    cloud: DeviceProfileSpec,
    inputs: TrainingInputs,
    images: Images,
) -> KubeObject:
    """The Job that exports both partitions with their exits and commits them to the store."""
    meta = owner["metadata"]
    names = naming.PipelineNames(meta["name"])
    return _pipeline_job(
        owner=owner,
        spec=spec,
        cloud=cloud,
        images=images,
        name=names.export(inputs.training_key),
        component="export",
        args=inputs.export(spec, meta["namespace"], meta["name"]),
        backoff_limit=2,
        key=inputs.training_key,
    )
