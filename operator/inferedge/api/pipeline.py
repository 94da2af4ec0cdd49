"""The InferencePipeline custom resource: a model split across edge pools and a cloud device
class; its sections live in the modules imported here."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from inferedge.api.adaptation import AdaptationSpec
from inferedge.api.base import (
    GROUP_VERSION,
    URI_MAX,
    CelRule,
    ObjectMeta,
    SecretKeyRef,
    Spec,
    cel,
)
from inferedge.api.edge_pools import DeviceRef, DistributionSpec, EdgeSpec
from inferedge.api.inference_spec import InferenceSpec
from inferedge.api.model_spec import DatasetSpec, ModelSpec
from inferedge.api.pipeline_status import InferencePipelineStatus
from inferedge.api.plan_spec import ExitsSpec, PartitioningSpec

DISTINCT_DEVICES_RULE = (
    "edge and cloud must name different DeviceProfiles: no edge pool may use cloud.profile"
)
TRUNCATED_EXIT_RULE = (
    "a truncated version's exit must be one of the edge part's exits (at most exits.edge)"
)
_EDGE_EXITS = (
    "(has(self.exits) && has(self.exits.edge) ? self.exits.edge : "
    f"{ExitsSpec.model_fields['edge'].default})"
)


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
    """A model, its data, and the device classes it is split across."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                rule="(!has(self.edge.profile) || self.edge.profile != self.cloud.profile) && "
                "(!has(self.edge.pools) || "
                "self.edge.pools.all(p, p.profile != self.cloud.profile))",
                message=DISTINCT_DEVICES_RULE,
                mirrors="InferencePipelineSpec._distinct_devices",
                field_path=".cloud.profile",
            ),
            CelRule(
                # Defaults spelled out: exits and exits.edge are defaulted by the API server.
                rule="!has(self.model.versions) || "
                f"self.model.versions.all(v, !has(v.exit) || v.exit <= {_EDGE_EXITS})",
                message=TRUNCATED_EXIT_RULE,
                mirrors="InferencePipelineSpec._truncated_at_an_edge_exit",
                field_path=".model.versions",
            ),
        )
    )

    model: ModelSpec = Field(description="The network to split, and its versions.")
    dataset: DatasetSpec = Field(
        default_factory=DatasetSpec, description="Data to train exits and calibrate on."
    )
    edge: EdgeSpec = Field(
        description="The edge: one DeviceProfile of role edge (profile, replicas), or several "
        "pools of edge boards (pools)."
    )
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
    distribution: DistributionSpec | None = Field(
        default=None,
        description="Serve a target rate with the edge pools together: per pool a version and "
        "a share of the request stream (docs/distribution.md); default: every pool serves the "
        "model itself.",
    )
    storage: StorageSpec = Field(
        default_factory=StorageSpec, description="Object store for the exported artifacts."
    )
    messaging: MessagingSpec = Field(
        default_factory=MessagingSpec, description="NATS connection between edge and cloud."
    )

    @model_validator(mode="after")
    def _distinct_devices(self) -> InferencePipelineSpec:
        if any(pool.profile == self.cloud.profile for pool in self.edge.resolved_pools()):
            raise ValueError(DISTINCT_DEVICES_RULE)
        return self

    @model_validator(mode="after")
    def _truncated_at_an_edge_exit(self) -> InferencePipelineSpec:
        for version in self.model.versions:
            if version.exit is not None and version.exit > self.exits.edge:
                raise ValueError(TRUNCATED_EXIT_RULE)
        return self


class InferencePipeline(Spec):
    """An InferencePipeline object (`kubectl get ipl`)."""

    api_version: Literal["inferedge.io/v1alpha1"] = GROUP_VERSION
    kind: Literal["InferencePipeline"] = "InferencePipeline"
    metadata: ObjectMeta
    spec: InferencePipelineSpec
    status: InferencePipelineStatus | None = None
