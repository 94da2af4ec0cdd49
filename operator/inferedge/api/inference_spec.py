"""How an InferencePipeline serves: when an exit answers, and how the edge offloads to the
cloud and the cloud batches."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from inferedge.api.base import CelRule, Spec, cel

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
