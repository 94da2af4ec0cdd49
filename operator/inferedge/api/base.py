"""Shared pieces of the custom resources: camelCase fields, object metadata, conditions."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

API_GROUP = "inferedge.io"
API_VERSION = "v1alpha1"
GROUP_VERSION: Final = "inferedge.io/v1alpha1"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class Spec(BaseModel):
    """Base of every spec object: camelCase on the wire, unknown fields rejected, immutable."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class ObjectMeta(Spec):
    """The part of Kubernetes object metadata inferedge reads."""

    model_config = ConfigDict(extra="allow", frozen=True, alias_generator=to_camel)

    name: str = Field(pattern=DNS_LABEL, description="Object name (a DNS-1123 label).")
    namespace: str = Field(
        default="default", pattern=DNS_LABEL, description="Namespace of the object."
    )
    generation: int | None = Field(default=None, ge=0, description="Set by the API server.")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Condition(Spec):
    """A status condition in the metav1.Condition shape, so `kubectl wait` and GitOps tools work."""

    type: str = Field(description="Profiled, Planned, ExitsTrained, ArtifactsStored, ...")
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = Field(default=None, ge=0)
    last_transition_time: str = Field(description="RFC 3339 time of the last status change.")
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field(default="", max_length=32768)


class SecretKeyRef(Spec):
    """A Secret holding credentials; inferedge never takes credentials inline."""

    name: str = Field(pattern=DNS_LABEL, description="Secret in the resource's namespace.")


class LinkSpec(Spec):
    """A network link between edge and cloud."""

    bandwidth_mbps: float = Field(gt=0, le=1e6, description="Uplink bandwidth, megabits/s.")
    rtt_ms: float = Field(ge=0, le=1e5, description="Round-trip time, milliseconds.")
