"""Deterministic names, labels, store keys and the hashes that key each step.

Every child a pipeline or DeviceProfile owns has a name derived from its owner and from the hash
of what it depends on, so an operator that restarts at any point finds the children it already
made instead of making them twice, and an edit that changes a hash makes a new child.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from inferedge.api.base import API_GROUP, API_VERSION
from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.pipeline import InferencePipelineSpec

GROUP: Final = API_GROUP
VERSION: Final = API_VERSION
PIPELINES: Final = "inferencepipelines"
DEVICE_PROFILES: Final = "deviceprofiles"
PREFIX: Final = "inferedge.io"

# Labels every child carries, so the operator finds (and kubectl selects) what it made.
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "inferedge-operator"
NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
PIPELINE_LABEL: Final = f"{PREFIX}/pipeline"
DEVICE_PROFILE_LABEL: Final = f"{PREFIX}/device-profile"
KEY_LABEL: Final = f"{PREFIX}/key"  # the step hash a Job was made for

# Annotations on children: the hash of the desired object, compared to decide on a replace.
TEMPLATE_HASH: Final = f"{PREFIX}/template-hash"
CONFIG_HASH: Final = f"{PREFIX}/config-hash"

# Job names end up in pod labels, which are limited to 63 characters; the longest suffixes
# are "-export-<8 hex>" for a pipeline and "-profile-<8 hex>" for a DeviceProfile.
MAX_NAME: Final = {
    "InferencePipeline": 63 - len("-export-12345678"),
    "DeviceProfile": 63 - len("-profile-12345678"),
}

# Store keys of shared profiles live beside pipeline prefixes; "_" keeps them apart from any
# pipeline, whose names are DNS labels.
PROFILES_DIR: Final = "_profiles"


def digest(payload: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of `payload`, as `length` hex digits."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def name_problem(name: str, kind: str) -> str | None:
    """Why `name` cannot own children with derived names, or None."""
    limit = MAX_NAME[kind]
    if len(name) > limit:
        return (
            f"metadata.name: a {kind} name may have at most {limit} characters "
            f"(its Jobs' names append to it), got {len(name)}"
        )
    return None


@dataclass(frozen=True)
class PipelineNames:
    """The names of a pipeline's children."""

    pipeline: str

    @property
    def edge(self) -> str:
        """The edge Deployment."""
        return f"{self.pipeline}-edge"

    @property
    def cloud(self) -> str:
        """The cloud Deployment and its Service."""
        return f"{self.pipeline}-cloud"

    @property
    def config(self) -> str:
        """The runtime ConfigMap both Deployments read."""
        return f"{self.pipeline}-runtime"

    def train(self, training_key: str) -> str:
        """The training Job of one training key."""
        return f"{self.pipeline}-train-{training_key[:8]}"

    def export(self, training_key: str) -> str:
        """The export Job of one training key."""
        return f"{self.pipeline}-export-{training_key[:8]}"


def pipeline_labels(pipeline: str, component: str) -> dict[str, str]:
    """Labels of a pipeline's child."""
    return {
        NAME_LABEL: "inferedge",
        INSTANCE_LABEL: pipeline,
        COMPONENT_LABEL: component,
        MANAGED_BY_LABEL: MANAGED_BY,
        PIPELINE_LABEL: pipeline,
    }


def profile_labels(device_profile: str, key: str) -> dict[str, str]:
    """Labels of a DeviceProfile's profiling Job."""
    return {
        NAME_LABEL: "inferedge",
        INSTANCE_LABEL: device_profile,
        COMPONENT_LABEL: "profile",
        MANAGED_BY_LABEL: MANAGED_BY,
        DEVICE_PROFILE_LABEL: device_profile,
        KEY_LABEL: key,
    }


def profiling_key(spec: InferencePipelineSpec, device: DeviceProfileSpec) -> str:
    """What a profile depends on: the model, where it is stored, and how the device is set up.

    The dataset counts only when it decides the number of classes. The device's link and its
    re-profiling schedule do not count (the link matters to planning, not to measuring).
    """
    model = spec.model
    payload = {
        "model": model.model_dump(
            mode="json", include={"name", "uri", "framework", "input_shape", "num_classes"}
        ),
        "classes_from": spec.dataset.uri or spec.dataset.name
        if model.num_classes is None
        else None,
        "store": spec.storage.model_dump(mode="json", include={"uri", "endpoint"}),
        "device": device.model_dump(
            mode="json",
            include={
                "node_selector",
                "tolerations",
                "runtime_class_name",
                "accelerator",
                "resources",
            },
        ),
        "profiling": device.profiling.model_dump(mode="json", exclude={"reprofile_after_hours"}),
    }
    return digest(payload, 12)


def profile_result_label(spec: InferencePipelineSpec, key: str) -> str:
    """How a DeviceProfile's status names one profiled model: `<model>@<profiling key>`."""
    return f"{spec.model.name}@{key}"


def profile_job_name(device_profile: str, key: str) -> str:
    """The profiling Job of one (DeviceProfile, profiling key)."""
    return f"{device_profile}-profile-{key[:8]}"


def profile_store_key(namespace: str, device_profile: str, key: str) -> str:
    """Where a profiling Job writes its profile in the store."""
    return f"{namespace}/{PROFILES_DIR}/{device_profile}/{key}.json"


def training_key(spec: InferencePipelineSpec, plan_hash: str) -> str:
    """What trained exits depend on: the plan and the training-relevant parts of the spec.

    The fixed threshold, timeouts, encoding, replicas, storage and messaging are left out: a
    change to them rolls the runtime config and never retrains.
    """
    inference = spec.inference
    payload = {
        "plan": plan_hash,
        "model": spec.model.model_dump(mode="json"),
        "dataset": spec.dataset.model_dump(mode="json"),
        "head": spec.exits.head.model_dump(mode="json"),
        "training": spec.exits.training.model_dump(mode="json"),
        "calibration": inference.model_dump(
            mode="json", include={"confidence", "target_accuracy", "max_accuracy_drop", "objective"}
        ),
    }
    return digest(payload)


def plan_store_key(namespace: str, pipeline: str, plan_hash: str) -> str:
    """Where the operator writes a plan for the training and export Jobs."""
    return f"{namespace}/{pipeline}/plans/{plan_hash}.json"


def training_prefix(namespace: str, pipeline: str, key: str) -> str:
    """Where a training Job leaves its weights, exits and evaluation for the export Job."""
    return f"{namespace}/{pipeline}/training/{key}"


def pipeline_prefix(namespace: str, pipeline: str) -> str:
    """Everything a pipeline wrote to the store lives under this prefix."""
    return f"{namespace}/{pipeline}"
