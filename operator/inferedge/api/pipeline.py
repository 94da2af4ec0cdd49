"""The InferencePipeline custom resource: a model split across an edge and a cloud device class."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from inferedge.api.base import (
    DNS_LABEL,
    GROUP_VERSION,
    Condition,
    LinkSpec,
    ObjectMeta,
    SecretKeyRef,
    Spec,
)
from inferedge.core.exits import ExitHeadSpec
from inferedge.core.placement import PARETO_80_20_ALPHA

Phase = Literal[
    "Pending", "Profiling", "Planning", "Training", "Exporting", "Deploying", "Ready", "Failed"
]


class ModelSpec(Spec):
    """Which network to split."""

    name: str = Field(
        min_length=1,
        max_length=253,
        description="A zoo model (resnet18, resnet50, mobilenet_v2, vgg11, vgg19, densenet121, "
        "inception_v3), or the name of the model stored at `uri`.",
    )
    uri: str | None = Field(
        default=None,
        description="A torch.export .pt2 or Keras file in the object store (s3://...). "
        "Never Python code.",
    )
    framework: Literal["torch", "tensorflow"] = "torch"
    input_shape: tuple[int, ...] = Field(
        min_length=1, max_length=4, description="Per-sample input shape, e.g. [3, 32, 32]."
    )
    num_classes: int | None = Field(
        default=None, ge=1, le=100000, description="Default: from the dataset."
    )
    weights_uri: str | None = Field(
        default=None, description="Trained backbone weights; trained on the dataset when unset."
    )

    @model_validator(mode="after")
    def _shape(self) -> ModelSpec:
        if any(d < 1 or d > 8192 for d in self.input_shape):
            raise ValueError("inputShape sizes must be in 1..8192")
        return self


class TrainingSpec(Spec):
    """A training schedule (backbone or exits)."""

    epochs: int = Field(default=20, ge=1, le=1000)
    batch_size: int = Field(default=64, ge=1, le=4096)
    learning_rate: float = Field(default=1e-3, gt=0, le=10)
    patience: int = Field(default=5, ge=1, le=1000)


class DatasetSpec(Spec):
    """Labelled data for training and calibration."""

    name: str = Field(
        default="digits",
        description="'digits' (built in), or a .npz / image folder at `uri`.",
    )
    uri: str | None = Field(default=None, description="s3://bucket/key.npz, or a local path.")
    val_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    seed: int = Field(default=0, ge=0)
    backbone_training: TrainingSpec = Field(default_factory=lambda: TrainingSpec(epochs=8))


class DeviceRef(Spec):
    """Which DeviceProfile a part runs on, and how many replicas."""

    profile: str = Field(pattern=DNS_LABEL, description="A DeviceProfile in this namespace.")
    replicas: int = Field(default=1, ge=0, le=1000)


class PartitioningSpec(Spec):
    """How the split point is chosen (see docs/planning.md)."""

    strategy: Literal["latency", "memory", "min-latency", "deadline"] = "latency"
    memory_fraction: float = Field(default=0.7, gt=0, le=1)
    deadline_ms: float | None = Field(default=None, gt=0)
    link: LinkSpec | None = Field(default=None, description="Default: the edge profile's link.")
    batch_size: int = Field(default=1, ge=1, le=4096)

    @model_validator(mode="after")
    def _deadline(self) -> PartitioningSpec:
        if self.strategy == "deadline" and self.deadline_ms is None:
            raise ValueError("strategy 'deadline' needs deadlineMs")
        return self


class ExitsSpec(Spec):
    """Where the early exits go and what they are."""

    placement: Literal["linear", "pareto"] = "linear"
    edge: int = Field(default=1, ge=0, le=3, description="Exits in the edge part.")
    cloud: int = Field(default=1, ge=0, le=3, description="Exits in the cloud part.")
    pareto_alpha: float = Field(default=PARETO_80_20_ALPHA, gt=0, le=100)
    head: ExitHeadSpec = Field(
        default_factory=lambda: ExitHeadSpec(preset="sdn"),
        description="A preset or a declarative layer list; never code.",
    )
    training: TrainingSpec = Field(default_factory=TrainingSpec)


class InferenceSpec(Spec):
    """How confident an exit must be to answer."""

    threshold: float | None = Field(
        default=None, ge=0, le=1, description="A fixed c_thr; a change only rolls the config."
    )
    target_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Choose c_thr to keep at least this accuracy."
    )
    max_accuracy_drop: float = Field(
        default=0.01, ge=0, le=1, description="Otherwise: stay within this of the full model."
    )
    confidence: Literal["max_softmax", "entropy"] = "max_softmax"
    objective: Literal["latency", "cost"] = "latency"
    offload_timeout_ms: float = Field(default=2000, gt=0, le=600000)
    activation_encoding: Literal["raw", "fp16", "int8"] = "raw"

    @model_validator(mode="after")
    def _one_rule(self) -> InferenceSpec:
        if self.threshold is not None and self.target_accuracy is not None:
            raise ValueError("give threshold or targetAccuracy, not both")
        return self


class StorageSpec(Spec):
    """Where artifacts go."""

    uri: str = Field(
        default="s3://inferedge-artifacts",
        description="s3://bucket[/prefix], or a directory for `inferedge run`.",
    )
    endpoint: str | None = Field(default=None, description="e.g. http://minio.minio:9000")
    secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret with accessKey and secretKey."
    )


class MessagingSpec(Spec):
    """How edge and cloud talk."""

    nats_url: str | None = Field(
        default=None, description="e.g. nats://nats:4222; `inferedge run` embeds a server."
    )
    secret_ref: SecretKeyRef | None = Field(default=None, description="Secret with NATS creds.")


class InferencePipelineSpec(Spec):
    """A model, its data, and the two device classes it is split across."""

    model: ModelSpec
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    edge: DeviceRef
    cloud: DeviceRef
    partitioning: PartitioningSpec = Field(default_factory=PartitioningSpec)
    exits: ExitsSpec = Field(default_factory=ExitsSpec)
    inference: InferenceSpec = Field(default_factory=InferenceSpec)
    storage: StorageSpec = Field(default_factory=StorageSpec)
    messaging: MessagingSpec = Field(default_factory=MessagingSpec)

    @model_validator(mode="after")
    def _distinct_devices(self) -> InferencePipelineSpec:
        if self.edge.profile == self.cloud.profile:
            raise ValueError("edge.profile and cloud.profile must name different DeviceProfiles")
        return self


class PlanSummary(Spec):
    """The plan in a few fields, for printer columns and humans."""

    hash: str
    split: int
    split_name: str
    edge_exits: tuple[int, ...]
    cloud_exits: tuple[int, ...]
    predicted_latency_ms: float


class ArtifactRef(Spec):
    """Where the exported partitions are, and the manifest's digest."""

    uri: str
    manifest_sha256: str


class InferencePipelineStatus(Spec):
    """What the operator observed; conditions drive `kubectl wait --for=condition=Ready`."""

    phase: Phase = "Pending"
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()
    plan: PlanSummary | None = None
    threshold: float | None = None
    artifacts: ArtifactRef | None = None
    offload_ratio: float | None = Field(default=None, ge=0, le=1)
    message: str = ""


class InferencePipeline(Spec):
    """An InferencePipeline object (`kubectl get ipl`)."""

    api_version: Literal["inferedge.io/v1alpha1"] = GROUP_VERSION
    kind: Literal["InferencePipeline"] = "InferencePipeline"
    metadata: ObjectMeta
    spec: InferencePipelineSpec
    status: InferencePipelineStatus | None = None
