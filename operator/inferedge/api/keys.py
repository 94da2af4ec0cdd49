"""Store keys and identities a pipeline's steps read and write, the same on both hosts.

The operator and `inferedge run` derive every key from the spec with these functions, so a
manifest names the same profiles, plan, training output and artifact set wherever it runs.
Each identity covers exactly what decides the bytes behind it: a change elsewhere in the spec
(replicas, timeouts, a fixed threshold) reuses what exists instead of redoing it.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.core.digest import json_digest
from inferedge.core.errors import InferedgeError, describe_validation_error

_HEX = re.compile(r"^[0-9a-f]{16}$")


def profiling_key(
    spec: InferencePipelineSpec, device: DeviceProfileSpec, *, threads: int | None = None
) -> str:
    """What a profile depends on: the model, where it is stored, how the device is set up, the
    exit head spec (the profile times a head of it at every cut) and, where the host caps them
    (`inferedge run`), the compute threads.

    The dataset counts only when it decides the number of classes. The device's link and its
    re-profiling schedule do not count (the link matters to planning, not to measuring).
    """
    model = spec.model
    payload: dict[str, object] = {
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
        "head": spec.exits.head.model_dump(mode="json"),
    }
    if threads is not None:
        payload["threads"] = threads
    return json_digest(payload, 12)


def profile_store_key(namespace: str, device_profile: str, key: str) -> str:
    """Where a device class's profile of one model is stored: beside the pipelines' prefixes,
    under `_profiles`, which no pipeline (a DNS label) can be named."""
    return f"{namespace}/_profiles/{device_profile}/{key}.json"


def training_key(spec: InferencePipelineSpec, plan_hash: str) -> str:
    """What trained exits and their calibration depend on: the plan and the training-relevant
    parts of the spec.

    The fixed threshold, timeouts, encoding, serving settings (batching, offloads in flight),
    replicas, storage and messaging are left out: a change to them rolls the runtime config and
    never retrains. So are the edge pools, the distribution and the model's other versions:
    they do not change what the model's own exits learn.
    """
    inference = spec.inference
    payload = {
        "plan": plan_hash,
        "model": spec.model.model_dump(mode="json", exclude={"versions"}),
        "dataset": spec.dataset.model_dump(mode="json"),
        "head": spec.exits.head.model_dump(mode="json"),
        "training": spec.exits.training.model_dump(mode="json"),
        "calibration": inference.model_dump(
            mode="json", include={"confidence", "target_accuracy", "max_accuracy_drop", "objective"}
        ),
    }
    if spec.adaptation is not None:
        # The space file carries the objective and grid, so they name the set; pipelines
        # without adaptation keep the keys they had.
        payload["adaptation"] = spec.adaptation.model_dump(mode="json", exclude={"switching"})
    return json_digest(payload)


def plan_store_key(namespace: str, pipeline: str, plan_hash: str) -> str:
    """Where a plan is written for the training and export steps."""
    return f"{namespace}/{pipeline}/plans/{plan_hash}.json"


def training_prefix(namespace: str, pipeline: str, key: str) -> str:
    """Where the training step writes weights, exits, evaluation and the set's identity."""
    return f"{namespace}/{pipeline}/training/{key}"


def identity_key(training: str) -> str:
    """Where the training step records the identity of the set it trained (written last)."""
    return f"{training}/identity.json"


def pipeline_prefix(namespace: str, pipeline: str) -> str:
    """Everything a pipeline ever stored lives under this prefix (its finalizer removes it)."""
    return f"{namespace}/{pipeline}"


def artifact_set_id(training: str, weights_sha256: str) -> str:
    """The name of an exported set: its training inputs and the backbone weights' digest.

    Together with the plan (inside `training`) these decide every byte of the set, so a
    retrained backbone publishes a new set and never collides with a committed one.
    """
    if not _HEX.match(training):
        raise ValueError(f"training key {training!r} must be 16 lowercase hex digits")
    if not re.fullmatch(r"[0-9a-f]{64}", weights_sha256):
        raise ValueError(f"weights digest {weights_sha256!r} must be a hex sha256")
    return json_digest({"training": training, "weights": weights_sha256})


class ArtifactIdentity(BaseModel):
    """What the training step records beside its output: which set it trained, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plan_hash: str = Field(pattern=r"^[0-9a-f]{16}$")
    training: str = Field(pattern=r"^[0-9a-f]{16}$", description="`training_key` of the spec.")
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    set_id: str = Field(pattern=r"^[0-9a-f]{16}$")

    @classmethod
    def of(cls, plan_hash: str, training: str, weights_sha256: str) -> ArtifactIdentity:
        """The identity of the set trained with these inputs."""
        return cls(
            plan_hash=plan_hash,
            training=training,
            weights_sha256=weights_sha256,
            set_id=artifact_set_id(training, weights_sha256),
        )


def parse_identity(data: bytes, source: str) -> ArtifactIdentity:
    """A stored identity record, validated (it may have been written by anyone); the set id
    must follow from the rest, so a record cannot point a pipeline at another set."""
    try:
        identity = ArtifactIdentity.model_validate_json(data)
    except ValidationError as exc:
        raise InferedgeError(describe_validation_error(exc, source)) from None
    if identity.set_id != artifact_set_id(identity.training, identity.weights_sha256):
        raise InferedgeError(f"{source}: set_id does not match its training key and weights")
    return identity
