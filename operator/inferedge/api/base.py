"""Shared pieces of the custom resources: camelCase fields, object metadata, CEL rules.

The models here are the single source of the CRDs (`inferedge.api.crd` turns them into
OpenAPI v3 schemas), so every field carries a description and its bounds, and every cross-field
check a pydantic validator makes is mirrored by a CEL rule declared with `cel(...)`: the API
server then rejects the same objects `inferedge run` does, without a webhook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

API_GROUP = "inferedge.io"
API_VERSION = "v1alpha1"
GROUP_VERSION: Final = "inferedge.io/v1alpha1"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# Longest URI a spec or status field takes (object store prefixes, model and dataset files).
URI_MAX = 2048
# resource.Quantity's serialised form (e.g. 500m, 2, 1.5Gi, 1e3).
_DECIMAL = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
QUANTITY = rf"^(\+|-)?{_DECIMAL}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_DECIMAL}))?$"
# Label keys and values as Kubernetes accepts them (prefix/name, 63-char names).
_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_KEY = rf"^({_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` entry: a CEL expression over `self` and its message.

    `mirrors` names the pydantic validator (`Class._method`) the rule re-states, so a test can
    check that every cross-field validator has a rule and that both reject the same objects; it
    is not written into the CRD.
    """

    rule: str
    message: str
    mirrors: str | None = None
    field_path: str | None = None
    reason: Literal["FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired"] | None = None

    def as_dict(self) -> JsonDict:
        """The rule as it appears in the CRD (plus `mirrors`, which the generator removes)."""
        out: JsonDict = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        if self.reason is not None:
            out["reason"] = self.reason
        if self.mirrors is not None:
            out["x-inferedge-mirrors"] = self.mirrors
        return out


CEL_KEY: Final = "x-kubernetes-validations"
# Conditions are a map keyed by type, so server-side apply merges them per condition.
CONDITIONS_LIST: Final[JsonDict] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


def cel(*rules: CelRule) -> JsonDict:
    """`json_schema_extra` for a model whose cross-field checks the API server must repeat."""
    return {CEL_KEY: [rule.as_dict() for rule in rules]}


def _quantity_text(value: object) -> object:
    # YAML turns `cpu: 2` into an int; Kubernetes accepts both, so we keep the text form.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    Field(pattern=QUANTITY, max_length=64),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY,
            "description": "A Kubernetes quantity, e.g. 500m, 2, 4Gi.",
        }
    ),
]


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
    labels: dict[str, str] = Field(default_factory=dict, description="Object labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Object annotations.")


class SecretKeyRef(Spec):
    """A Secret holding credentials; inferedge never takes credentials inline."""

    name: str = Field(
        pattern=DNS_LABEL, max_length=63, description="Secret in the resource's namespace."
    )


class LinkSpec(Spec):
    """A network link between edge and cloud."""

    bandwidth_mbps: float = Field(gt=0, le=1e6, description="Uplink bandwidth, megabits/s.")
    rtt_ms: float = Field(ge=0, le=1e5, description="Round-trip time, milliseconds.")
