"""The InferencePipeline custom resource: a model split across an edge and a cloud device class."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from inferedge.api.adaptation import AdaptationSpec
from inferedge.api.base import (
    DNS_LABEL,
    GROUP_VERSION,
    URI_MAX,
    CelRule,
    LinkSpec,
    ObjectMeta,
    SecretKeyRef,
    Spec,
    cel,
)
from inferedge.api.pipeline_status import InferencePipelineStatus
from inferedge.core.exits import ExitHeadSpec
from inferedge.core.placement import PARETO_80_20_ALPHA
from inferedge.core.zoo import (
    MODEL_NAME,
    NAME_RULE,
    URI_RULE,
    ZOO,
    Framework,
    model_name_error,
)

# One input dimension: 8192 covers any image side or sequence length we can profile.
InputDim = Annotated[int, Field(ge=1, le=8192)]


def _cel_list(names: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{n}'" for n in names) + "]"


# Written to hold before defaulting too: an absent framework is torch.
_TENSORFLOW = "has(self.framework) && self.framework == 'tensorflow'"


class ModelSpec(Spec):
    """Which network to split: a zoo model, or one stored at `uri` in a format that loads
    without running code. A custom resource never names code."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                rule=f"has(self.uri) || ({_TENSORFLOW} ? self.name in "
                f"{_cel_list(ZOO['tensorflow'])} : self.name in {_cel_list(ZOO['torch'])})",
                message=NAME_RULE,
                mirrors="ModelSpec._data_not_code",
                field_path=".name",
            ),
            CelRule(
                rule=f"!has(self.uri) || ({_TENSORFLOW} ? self.uri.endsWith('.keras') : "
                "self.uri.endsWith('.pt2'))",
                message=URI_RULE,
                mirrors="ModelSpec._data_not_code",
                field_path=".uri",
            ),
        )
    )

    name: str = Field(
        pattern=MODEL_NAME,
        max_length=63,
        description="A zoo model: for torch "
        + ", ".join(ZOO["torch"])
        + "; for tensorflow "
        + ", ".join(ZOO["tensorflow"])
        + ". With `uri`, a label for the stored model. Never a path or Python code.",
    )
    uri: str | None = Field(
        default=None,
        max_length=URI_MAX,
        description="A model of your own in the object store (s3://...): a torch.export .pt2 "
        "file for torch, a .keras file for tensorflow. Both load without running code.",
    )
    framework: Framework = Field(
        default="torch", description="Framework the model is written in: torch or tensorflow."
    )
    input_shape: tuple[InputDim, ...] = Field(
        min_length=1,
        max_length=4,
        description="Per-sample input shape without the batch dimension, e.g. [3, 32, 32]; "
        "each size in 1..8192.",
    )
    num_classes: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="Classes the model predicts. Default: from the dataset.",
    )
    weights_uri: str | None = Field(
        default=None,
        max_length=URI_MAX,
        description="Trained backbone weights (s3://... or a path); when unset, the weights "
        "stored with `uri`, else a zoo model trained on the dataset.",
    )

    @model_validator(mode="after")
    def _data_not_code(self) -> ModelSpec:
        error = model_name_error(self.name, self.framework, self.uri)
        if error is not None:
            raise ValueError(error)
        return self


class TrainingSpec(Spec):
    """A training schedule (backbone or exits)."""

    epochs: int = Field(default=20, ge=1, le=1000, description="Most epochs to train.")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Samples per training step.")
    learning_rate: float = Field(default=1e-3, gt=0, le=10, description="Optimizer step size.")
    patience: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Stop after this many epochs without a better validation loss.",
    )


class DatasetSpec(Spec):
    """Labelled data for training and calibration."""

    name: str = Field(
        default="digits",
        min_length=1,
        max_length=253,
        description="'digits' (built in), or a .npz / image folder at `uri`.",
    )
    uri: str | None = Field(
        default=None, max_length=URI_MAX, description="s3://bucket/key.npz, or a local path."
    )
    val_fraction: float = Field(
        default=0.15, gt=0, lt=0.5, description="Share held out to calibrate thresholds."
    )
    test_fraction: float = Field(
        default=0.15, gt=0, lt=0.5, description="Share held out to report accuracy."
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the split and training.")
    backbone_training: TrainingSpec = Field(
        default_factory=lambda: TrainingSpec(epochs=8),
        description="Schedule for training a zoo backbone (neither weightsUri nor uri given).",
    )


class DeviceRef(Spec):
    """Which DeviceProfile a part runs on, and how many replicas."""

    profile: str = Field(
        pattern=DNS_LABEL, max_length=63, description="A DeviceProfile in this namespace."
    )
    replicas: int = Field(
        default=1, ge=0, le=1000, description="Pods serving this part (0 pauses it)."
    )


class PartitioningSpec(Spec):
    """How the split point is chosen (see docs/planning.md)."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                # Written to hold before defaulting too: the API server also checks `default: {}`.
                rule="!has(self.strategy) || self.strategy != 'deadline' || has(self.deadlineMs)",
                message="strategy 'deadline' needs deadlineMs",
                mirrors="PartitioningSpec._deadline",
                field_path=".deadlineMs",
                reason="FieldValueRequired",
            )
        )
    )

    strategy: Literal["latency", "memory", "min-latency", "deadline"] = Field(
        default="latency",
        description="latency: deepest cut whose edge prefix is no slower than the whole "
        "network in the cloud; memory: deepest cut within memoryFraction of the model's "
        "memory; min-latency: Neurosurgeon's end-to-end minimum; deadline: Edgent's most "
        "accurate plan within deadlineMs.",
    )
    memory_fraction: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="strategy memory: the edge part may hold at most this share of the "
        "model's memory.",
    )
    deadline_ms: float | None = Field(
        default=None, gt=0, le=3.6e6, description="Latency budget, ms (strategy deadline)."
    )
    link: LinkSpec | None = Field(default=None, description="Default: the edge profile's link.")
    batch_size: int = Field(
        default=1, ge=1, le=4096, description="Batch size the plan is made for (a profiled one)."
    )

    @model_validator(mode="after")
    def _deadline(self) -> PartitioningSpec:
        if self.strategy == "deadline" and self.deadline_ms is None:
            raise ValueError("strategy 'deadline' needs deadlineMs")
        return self


class ExitsSpec(Spec):
    """Where the early exits go and what they are."""

    placement: Literal["linear", "pareto"] = Field(
        default="linear",
        description="linear: evenly spaced in FLOPs; pareto: denser early (EdgeLessPart).",
    )
    edge: int = Field(default=1, ge=0, le=3, description="Exits in the edge part.")
    cloud: int = Field(default=1, ge=0, le=3, description="Exits in the cloud part.")
    pareto_alpha: float = Field(
        default=PARETO_80_20_ALPHA,
        gt=0,
        le=100,
        description="Shape of the pareto placement (1.161 is the 80/20 rule).",
    )
    head: ExitHeadSpec = Field(
        default_factory=lambda: ExitHeadSpec(preset="sdn"),
        description="A preset or a declarative layer list; never code.",
    )
    training: TrainingSpec = Field(
        default_factory=TrainingSpec,
        description="Schedule for training the exit heads on the frozen backbone.",
    )


_BATCH, _QUEUED = 32, 256  # `inferedge serve`'s defaults for the cloud's batching


class CloudBatchingSpec(Spec):
    """How the cloud batches offloads: `inferedge serve cloud`'s batching flags."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                # Defaults spelled out: the API server checks the rule against `{}` as well.
                rule=f"(has(self.maxQueuedSamples) ? self.maxQueuedSamples : {_QUEUED}) >= "
                f"(has(self.maxBatchSize) ? self.maxBatchSize : {_BATCH})",
                message="maxQueuedSamples must be at least maxBatchSize, or no batch could fill",
                mirrors="CloudBatchingSpec._a_batch_fits_the_queue",
            )
        )
    )

    max_batch_size: int = Field(
        default=_BATCH, ge=1, le=4096, description="Most samples in one batch of the cloud part."
    )
    max_wait_ms: float = Field(
        default=5.0,
        ge=0,
        le=10000,
        description="Longest a sample waits for company before its batch runs anyway.",
    )
    max_queued_samples: int = Field(
        default=_QUEUED,
        ge=1,
        le=1 << 20,
        description="Samples accepted and not answered yet; past it the cloud refuses at once "
        "(cloud_busy) and the edge answers degraded instead of waiting out its timeout.",
    )
    max_in_flight: int = Field(
        default=128,
        ge=1,
        le=65536,
        description="Offload messages a cloud pod takes in at once, so its batcher can batch them.",
    )

    @model_validator(mode="after")
    def _a_batch_fits_the_queue(self) -> CloudBatchingSpec:
        if self.max_queued_samples < self.max_batch_size:
            raise ValueError(
                "maxQueuedSamples must be at least maxBatchSize, or no batch could fill"
            )
        return self


class InferenceSpec(Spec):
    """How confident an exit must be to answer, and how the edge and the cloud serve."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                rule="!(has(self.threshold) && has(self.targetAccuracy))",
                message="give threshold or targetAccuracy, not both",
                mirrors="InferenceSpec._one_rule",
            )
        )
    )

    threshold: float | None = Field(
        default=None, ge=0, le=1, description="A fixed c_thr; a change only rolls the config."
    )
    target_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Choose c_thr to keep at least this accuracy."
    )
    max_accuracy_drop: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Otherwise: choose c_thr to stay within this of the full model's accuracy.",
    )
    confidence: Literal["max_softmax", "entropy"] = Field(
        default="max_softmax", description="How an exit's confidence is measured."
    )
    objective: Literal["latency", "cost"] = Field(
        default="latency", description="What threshold calibration minimises."
    )
    offload_timeout_ms: float = Field(
        default=2000,
        gt=0,
        le=600000,
        description="How long the edge waits for the cloud before answering degraded.",
    )
    activation_encoding: Literal["raw", "fp16", "int8"] = Field(
        default="raw", description="Wire encoding of offloaded activations."
    )
    offloads_in_flight: int = Field(
        default=2,
        ge=1,
        le=1024,
        description="Offload messages an edge pod keeps on the wire at once; offloads that "
        "arrive meanwhile leave together in the next one.",
    )
    cloud_batching: CloudBatchingSpec = Field(default_factory=CloudBatchingSpec)

    @model_validator(mode="after")
    def _one_rule(self) -> InferenceSpec:
        if self.threshold is not None and self.target_accuracy is not None:
            raise ValueError("give threshold or targetAccuracy, not both")
        return self


class StorageSpec(Spec):
    """Where artifacts go."""

    uri: str = Field(
        default="s3://inferedge-artifacts",
        min_length=1,
        max_length=URI_MAX,
        description="s3://bucket[/prefix], or a directory for `inferedge run`.",
    )
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        max_length=URI_MAX,
        description="S3 endpoint, e.g. http://minio.minio:9000 (http:// for plain text).",
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret with accessKey and secretKey."
    )


class MessagingSpec(Spec):
    """How edge and cloud talk."""

    nats_url: str | None = Field(
        default=None,
        pattern=r"^(nats|tls|ws|wss)://",
        max_length=URI_MAX,
        description="e.g. nats://nats:4222; `inferedge run` embeds a server.",
    )
    secret_ref: SecretKeyRef | None = Field(default=None, description="Secret with NATS creds.")


class InferencePipelineSpec(Spec):
    """A model, its data, and the two device classes it is split across."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                rule="self.edge.profile != self.cloud.profile",
                message="edge.profile and cloud.profile must name different DeviceProfiles",
                mirrors="InferencePipelineSpec._distinct_devices",
                field_path=".cloud.profile",
            )
        )
    )

    model: ModelSpec = Field(description="The network to split.")
    dataset: DatasetSpec = Field(
        default_factory=DatasetSpec, description="Data to train exits and calibrate on."
    )
    edge: DeviceRef = Field(description="The edge DeviceProfile (role edge) and its replicas.")
    cloud: DeviceRef = Field(description="The cloud DeviceProfile (role cloud) and its replicas.")
    partitioning: PartitioningSpec = Field(
        default_factory=PartitioningSpec, description="How the split point is chosen."
    )
    exits: ExitsSpec = Field(default_factory=ExitsSpec, description="The early exits.")
    inference: InferenceSpec = Field(
        default_factory=InferenceSpec, description="When an exit answers, and offload settings."
    )
    adaptation: AdaptationSpec | None = Field(
        default=None,
        description="Serve an operating space and follow the link at run time; default: "
        "one plan, served as planned.",
    )
    storage: StorageSpec = Field(
        default_factory=StorageSpec, description="Object store for the exported artifacts."
    )
    messaging: MessagingSpec = Field(
        default_factory=MessagingSpec, description="NATS connection between edge and cloud."
    )

    @model_validator(mode="after")
    def _distinct_devices(self) -> InferencePipelineSpec:
        if self.edge.profile == self.cloud.profile:
            raise ValueError("edge.profile and cloud.profile must name different DeviceProfiles")
        return self


class InferencePipeline(Spec):
    """An InferencePipeline object (`kubectl get ipl`)."""

    api_version: Literal["inferedge.io/v1alpha1"] = GROUP_VERSION
    kind: Literal["InferencePipeline"] = "InferencePipeline"
    metadata: ObjectMeta
    spec: InferencePipelineSpec
    status: InferencePipelineStatus | None = None
