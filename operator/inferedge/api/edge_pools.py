"""Where an InferencePipeline runs: the cloud's DeviceProfile, the edge pools, and the rate the
pools must serve together."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from inferedge.api.base import DNS_LABEL, CelRule, Spec, cel

MAX_POOLS = 8
SINGLE_POOL = "edge"
"""The name of the one pool the single form (`spec.edge.profile`) stands for."""
POOL_NAME_MAX = 40

ONE_FORM_RULE = "give exactly one of profile (one pool) or pools"
UNIQUE_POOLS_RULE = "pool names must be unique"
POOL_REPLICAS_RULE = "with pools, give replicas per pool: spec.edge.replicas is the single form's"


class DeviceRef(Spec):
    """Which DeviceProfile a part runs on, and how many replicas."""

    profile: str = Field(
        pattern=DNS_LABEL, max_length=63, description="A DeviceProfile in this namespace."
    )
    replicas: int = Field(
        default=1, ge=0, le=1000, description="Pods serving this part (0 pauses it)."
    )


class EdgePool(Spec):
    """One class of edge boards: a DeviceProfile of role edge and its replicas."""

    name: str = Field(
        pattern=DNS_LABEL,
        max_length=POOL_NAME_MAX,
        description="The pool's name (a DNS-1123 label): a token of its NATS subjects and the "
        "suffix of its Deployment's name.",
    )
    profile: str = Field(
        pattern=DNS_LABEL,
        max_length=63,
        description="A DeviceProfile of role edge in this namespace.",
    )
    replicas: int = Field(
        default=1, ge=0, le=1000, description="Pods serving this pool (0 pauses it)."
    )


class EdgeSpec(Spec):
    """The edge: one DeviceProfile (`profile`, `replicas`), or several pools (`pools`)."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                # About profile and pools only: the API server defaults replicas first.
                rule="has(self.profile) != has(self.pools)",
                message=ONE_FORM_RULE,
                mirrors="EdgeSpec._one_form",
            ),
            CelRule(
                rule="!has(self.pools) || "
                "self.pools.all(p, self.pools.exists_one(q, q.name == p.name))",
                message=UNIQUE_POOLS_RULE,
                mirrors="EdgeSpec._one_form",
                field_path=".pools",
            ),
            CelRule(
                rule="!has(self.pools) || !has(self.replicas) || self.replicas == 1",
                message=POOL_REPLICAS_RULE,
                mirrors="EdgeSpec._one_form",
                field_path=".replicas",
            ),
        )
    )

    profile: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        max_length=63,
        description="The single form: a DeviceProfile of role edge in this namespace. "
        "Give this or pools.",
    )
    replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="The single form: pods serving the edge part (0 pauses it).",
    )
    pools: tuple[EdgePool, ...] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_POOLS,
        description="Several pools of edge boards, each with its DeviceProfile and replicas; "
        "give this or profile. The first pool is the reference the split and the exits are "
        "planned on, and every pool serves the artifact set of its version. A list here "
        "rather than at spec.edge, since a structural CRD schema cannot make a field either "
        "an object or a list.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> EdgeSpec:
        if (self.profile is None) == (self.pools is None):
            raise ValueError(ONE_FORM_RULE)
        if self.pools is not None:
            names = [pool.name for pool in self.pools]
            if len(set(names)) != len(names):
                raise ValueError(UNIQUE_POOLS_RULE)
            if self.replicas != 1:
                raise ValueError(POOL_REPLICAS_RULE)
        return self

    def resolved_pools(self) -> tuple[EdgePool, ...]:
        """The pools, in order; the single form is one pool named `edge`."""
        if self.pools is not None:
            return self.pools
        assert self.profile is not None  # _one_form: the single form has its profile
        return (EdgePool(name=SINGLE_POOL, profile=self.profile, replicas=self.replicas),)

    @property
    def reference(self) -> EdgePool:
        """The first pool: the device class the split and the exits are planned on."""
        return self.resolved_pools()[0]

    def reference_field(self, field: Literal["profile", "replicas"] = "profile") -> str:
        """Where the reference pool's `field` is written, for messages naming it."""
        where = "spec.edge" if self.pools is None else "spec.edge.pools[0]"
        return f"{where}.{field}"


class DistributionSpec(Spec):
    """Serve a target rate with the edge pools together: per pool a version of the model and a
    share of the request stream, decided again when the pools change (docs/distribution.md)."""

    target_rate: float = Field(
        gt=0, le=1e6, description="Inferences a second the whole site must serve."
    )
    min_accuracy: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Every version served must reach this accuracy, so it holds for each "
        "request, not only on average.",
    )
    max_utilization: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="A pool is loaded to at most this share of what its replicas sustain, so "
        "its queue stays bounded when requests come in bursts.",
    )
    drift_bound: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="How far a pool's measured throughput may drift from the exploration "
        "table (a share of the table's figure) before the shares are decided again.",
    )
