"""The DeviceProfile custom resource: one class of device (an edge board, a cloud node pool)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from inferedge.api.base import GROUP_VERSION, Condition, LinkSpec, ObjectMeta, Spec


class Toleration(Spec):
    """A Kubernetes toleration, so pods can land on tainted edge nodes."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Resources(Spec):
    """Container resource requests and limits, as Kubernetes quantities."""

    requests: dict[str, str] = Field(default_factory=dict, description="e.g. {cpu: '2'}.")
    limits: dict[str, str] = Field(
        default_factory=dict, description="e.g. {memory: 4Gi, nvidia.com/gpu: '1'}."
    )


class ProfilingSpec(Spec):
    """How this device class is profiled."""

    batch_sizes: tuple[int, ...] = Field(default=(1,), min_length=1, max_length=8)
    warmup: int = Field(default=3, ge=0, le=1000)
    repeats: int = Field(default=20, ge=1, le=10000)
    reprofile_after_hours: int | None = Field(
        default=None, ge=1, le=8760, description="Profile again this often; never when unset."
    )

    @model_validator(mode="after")
    def _batch_sizes(self) -> ProfilingSpec:
        if any(b < 1 or b > 4096 for b in self.batch_sizes) or len(set(self.batch_sizes)) != len(
            self.batch_sizes
        ):
            raise ValueError("batchSizes must be distinct integers in 1..4096")
        return self


class EmulationSpec(Spec):
    """How `inferedge run` emulates this device on one machine (ignored in a cluster)."""

    slowdown: float = Field(
        default=1.0, ge=1.0, le=1000.0, description="Multiply measured latencies by this."
    )
    memory_mib: int | None = Field(
        default=None, ge=1, alias="memoryMiB", description="Memory the device offers, MiB."
    )


class DeviceProfileSpec(Spec):
    """Where a device class's pods run and how it is measured."""

    role: Literal["edge", "cloud"]
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node labels; edge profiles default to kubernetes.io/arch=arm64.",
    )
    tolerations: tuple[Toleration, ...] = ()
    runtime_class_name: str | None = Field(
        default=None, description="e.g. 'nvidia' for Jetson GPU access."
    )
    accelerator: str | None = Field(default=None, description="e.g. 'jetson-orin-nano'.")
    resources: Resources = Field(default_factory=Resources)
    profiling: ProfilingSpec = Field(default_factory=ProfilingSpec)
    link: LinkSpec | None = Field(
        default=None, description="Declared link to the cloud (edge profiles)."
    )
    emulation: EmulationSpec = Field(default_factory=EmulationSpec)


class ProfileResult(Spec):
    """Where one model's profile for this device class is stored."""

    model: str
    uri: str
    profiled_at: str


class DeviceProfileStatus(Spec):
    """What the operator observed."""

    observed_generation: int | None = None
    node: str | None = Field(default=None, description="Node the last profiling Job ran on.")
    results: tuple[ProfileResult, ...] = ()
    conditions: tuple[Condition, ...] = ()


class DeviceProfile(Spec):
    """A DeviceProfile object (`kubectl get dprof`)."""

    api_version: Literal["inferedge.io/v1alpha1"] = GROUP_VERSION
    kind: Literal["DeviceProfile"] = "DeviceProfile"
    metadata: ObjectMeta
    spec: DeviceProfileSpec
    status: DeviceProfileStatus | None = None
