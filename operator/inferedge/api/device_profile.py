"""The DeviceProfile custom resource: one class of device (an edge board, a cloud node pool)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from inferedge.api.base import (
    CONDITIONS_LIST,
    DNS_LABEL,
    GROUP_VERSION,
    LABEL_KEY,
    LABEL_VALUE,
    CelRule,
    LinkSpec,
    ObjectMeta,
    Quantity,
    Spec,
    cel,
)
from inferedge.api.tuning import KnobEmulationSpec, TuningSpec
from inferedge.core.conditions import RFC3339, Condition
from inferedge.core.roles import Role

LabelKey = Annotated[str, Field(pattern=LABEL_KEY, max_length=317)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE, max_length=63)]
BatchSize = Annotated[int, Field(ge=1, le=4096)]


class Toleration(Spec):
    """A Kubernetes toleration, so pods can land on tainted edge nodes."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                rule="!has(self.operator) || self.operator != 'Exists' || !has(self.value)",
                message="a toleration with operator Exists takes no value",
                mirrors="Toleration._kubernetes_rules",
                field_path=".value",
                reason="FieldValueForbidden",
            ),
            CelRule(
                rule="has(self.key) || (has(self.operator) && self.operator == 'Exists')",
                message="a toleration without a key needs operator Exists",
                mirrors="Toleration._kubernetes_rules",
                field_path=".operator",
            ),
        )
    )

    key: str | None = Field(
        default=None,
        pattern=LABEL_KEY,
        max_length=317,
        description="Taint key to tolerate; empty with operator Exists tolerates every taint.",
    )
    operator: Literal["Exists", "Equal"] = Field(
        default="Equal", description="Equal matches key and value; Exists matches the key."
    )
    value: str | None = Field(
        default=None, pattern=LABEL_VALUE, max_length=63, description="Taint value (Equal)."
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; every effect when unset."
    )
    toleration_seconds: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="For NoExecute: how long pods stay bound after the taint appears.",
    )

    @model_validator(mode="after")
    def _kubernetes_rules(self) -> Toleration:
        if self.operator == "Exists" and self.value is not None:
            raise ValueError("a toleration with operator Exists takes no value")
        if self.key is None and self.operator != "Exists":
            raise ValueError("a toleration without a key needs operator Exists")
        return self


class Resources(Spec):
    """Container resource requests and limits, as Kubernetes quantities."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, max_length=16, description="e.g. {cpu: '2'}."
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=16,
        description="e.g. {memory: 4Gi, nvidia.com/gpu: '1'}.",
    )


class ProfilingSpec(Spec):
    """How this device class is profiled."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                rule="!has(self.batchSizes)"
                " || self.batchSizes.all(b, self.batchSizes.exists_one(c, c == b))",
                message="batchSizes must be distinct integers in 1..4096",
                mirrors="ProfilingSpec._batch_sizes",
                field_path=".batchSizes",
            )
        )
    )

    batch_sizes: tuple[BatchSize, ...] = Field(
        default=(1,),
        min_length=1,
        max_length=8,
        description="Batch sizes to measure; plans can only use measured ones.",
    )
    warmup: int = Field(default=3, ge=0, le=1000, description="Untimed runs before timing.")
    repeats: int = Field(default=20, ge=1, le=10000, description="Timed runs per segment.")
    reprofile_after_hours: int | None = Field(
        default=None, ge=1, le=8760, description="Profile again this often; never when unset."
    )

    @model_validator(mode="after")
    def _batch_sizes(self) -> ProfilingSpec:
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise ValueError("batchSizes must be distinct integers in 1..4096")
        return self


class EmulationSpec(Spec):
    """How `inferedge run` emulates this device on one machine (ignored in a cluster)."""

    slowdown: float = Field(
        default=1.0, ge=1.0, le=1000.0, description="Multiply measured latencies by this."
    )
    memory_mib: int | None = Field(
        default=None,
        ge=1,
        le=2**24,
        alias="memoryMiB",
        description="Memory the device offers, MiB.",
    )
    knobs: KnobEmulationSpec | None = Field(
        default=None,
        description="Clocks, service time and power of the device, for spec.tuning without "
        "real clocks or power rails (every figure labelled emulated).",
    )


class DeviceProfileSpec(Spec):
    """Where a device class's pods run and how it is measured."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                rule="!has(self.tuning) || self.role == 'edge'",
                message="tuning is for edge profiles: the cloud's batching is "
                "spec.inference.cloudBatching of the pipeline",
                mirrors="DeviceProfileSpec._tuning_at_the_edge",
                field_path=".tuning",
            )
        )
    )

    role: Role = Field(
        description="edge (runs the first part, near the data) or cloud (runs the rest)."
    )
    node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        max_length=32,
        description="Node labels; edge profiles default to kubernetes.io/arch=arm64.",
    )
    tolerations: tuple[Toleration, ...] = Field(
        default=(), max_length=32, description="Taints the pods tolerate (e.g. on edge nodes)."
    )
    runtime_class_name: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        max_length=63,
        description="e.g. 'nvidia' for Jetson GPU access.",
    )
    accelerator: str | None = Field(
        default=None, max_length=63, description="e.g. 'jetson-orin-nano'."
    )
    resources: Resources = Field(
        default_factory=Resources, description="Requests and limits of the part's containers."
    )
    profiling: ProfilingSpec = Field(
        default_factory=ProfilingSpec, description="How the profiling Job measures the model."
    )
    link: LinkSpec | None = Field(
        default=None, description="Declared link to the cloud (edge profiles)."
    )
    emulation: EmulationSpec = Field(
        default_factory=EmulationSpec, description="How `inferedge run` stands in for this device."
    )
    tuning: TuningSpec | None = Field(
        default=None,
        description="Tune the edge's batch size and clocks online for energy and latency "
        "(edge profiles); off when unset.",
    )

    @model_validator(mode="after")
    def _tuning_at_the_edge(self) -> DeviceProfileSpec:
        if self.tuning is not None and self.role != "edge":
            raise ValueError(
                "tuning is for edge profiles: the cloud's batching is "
                "spec.inference.cloudBatching of the pipeline"
            )
        return self


class ProfileResult(Spec):
    """Where one model's profile for this device class is stored."""

    model: str = Field(max_length=253, description="The model that was profiled.")
    uri: str = Field(max_length=2048, description="Where the profile JSON is stored.")
    profiled_at: str = Field(
        description="RFC 3339 time the profile was measured.",
        json_schema_extra={"format": RFC3339},
    )


class DeviceProfileStatus(Spec):
    """What the operator observed."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status describes."
    )
    node: str | None = Field(
        default=None, max_length=253, description="Node the last profiling Job ran on."
    )
    profiled_at: str | None = Field(
        default=None,
        description="RFC 3339 time the last profiling Job finished.",
        json_schema_extra={"format": RFC3339},
    )
    results: tuple[ProfileResult, ...] = Field(
        default=(), max_length=256, description="Stored profiles, one per model."
    )
    conditions: tuple[Condition, ...] = Field(
        default=(),
        max_length=32,
        json_schema_extra=CONDITIONS_LIST,
        description="Profiled, Ready (metav1.Condition shape).",
    )
    kopf: dict[str, Any] | None = Field(
        default=None, description="The operator framework's own bookkeeping; not an API."
    )

    @model_validator(mode="before")
    @classmethod
    def _derive_profiled_at(cls, data: Any) -> Any:
        # The Profiled printer column needs one scalar: the newest result's time, unless given.
        if isinstance(data, dict) and data.get("profiledAt", data.get("profiled_at")) is None:
            times = [
                r.get("profiledAt", r.get("profiled_at"))
                for r in data.get("results") or ()
                if isinstance(r, dict)
            ]
            stamps = [t for t in times if isinstance(t, str)]
            if stamps:
                return {**data, "profiledAt": max(stamps)}
        return data


class DeviceProfile(Spec):
    """A DeviceProfile object (`kubectl get dprof`)."""

    api_version: Literal["inferedge.io/v1alpha1"] = GROUP_VERSION
    kind: Literal["DeviceProfile"] = "DeviceProfile"
    metadata: ObjectMeta
    spec: DeviceProfileSpec
    status: DeviceProfileStatus | None = None
