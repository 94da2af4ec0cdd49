"""The InferencePipeline's status: what the operator observed and what is in effect."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field, model_validator
from pydantic.config import JsonDict

from inferedge.api.base import CONDITIONS_LIST, URI_MAX, Spec
from inferedge.api.edge_pools import MAX_POOLS, POOL_NAME_MAX
from inferedge.api.model_spec import LABEL_MAX
from inferedge.core.conditions import Condition
from inferedge.core.lifecycle import Phase


class PlanSummary(Spec):
    """The plan in a few fields, for printer columns and humans."""

    hash: str = Field(max_length=128, description="Plan hash; names the artifact set.")
    split: int = Field(ge=0, description="Index of the cut point the model is split at.")
    split_name: str = Field(max_length=253, description="Layer the edge part ends with.")
    edge_exits: tuple[int, ...] = Field(
        max_length=3, description="Cut-point indices of the edge part's exits."
    )
    cloud_exits: tuple[int, ...] = Field(
        max_length=3, description="Cut-point indices of the cloud part's exits."
    )
    predicted_latency_ms: float = Field(ge=0, description="Planner's expected latency, ms.")
    candidates: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="spec.adaptation: candidate exits of the operating space (split is then the "
        "deepest the edge may serve; status.adaptation shows the point served).",
    )
    exits: str | None = Field(
        default=None,
        max_length=16,
        description="Exit counts as edge+cloud, e.g. 2+1 (derived when unset; printer column).",
    )

    @model_validator(mode="before")
    @classmethod
    def _derive_exits(cls, data: Any) -> Any:
        # The printer column needs a scalar; derive it so writers cannot forget it.
        if isinstance(data, dict) and data.get("exits") is None:
            edge = data.get("edgeExits", data.get("edge_exits"))
            cloud = data.get("cloudExits", data.get("cloud_exits"))
            candidates = data.get("candidates")
            if isinstance(candidates, int):
                return {**data, "exits": f"space:{candidates}"}
            if isinstance(edge, list | tuple) and isinstance(cloud, list | tuple):
                return {**data, "exits": f"{len(edge)}+{len(cloud)}"}
        return data


class ArtifactRef(Spec):
    """Where the exported partitions are, and the manifest's digest."""

    uri: str = Field(max_length=URI_MAX, description="Prefix of the committed artifact set.")
    manifest_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the set's manifest.json, pinned when its export run finished; "
        "the servers load the set only while its manifest matches.",
    )
    export_run: str = Field(
        default="",
        max_length=64,
        description="UID of the export Job that published the set; a new run pins afresh.",
    )
    digests: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="sha256 of each file of the set, by key (e.g. edge.pt2, cloud.pt2).",
    )


class PartStatus(Spec):
    """Live state of one part's Deployment."""

    deployment: str | None = Field(
        default=None, max_length=253, description="Name of the Deployment serving this part."
    )
    replicas: int = Field(default=0, ge=0, description="Pods wanted.")
    ready_replicas: int = Field(default=0, ge=0, description="Pods passing their readiness probe.")


TuningState = Literal["Tuning", "Off", "Unreachable"]
MAX_TUNING_PODS: Final = 16


class PodTuning(Spec):
    """One edge pod's knob tuner, as its `GET /tuning` answered when last read."""

    pod: str = Field(max_length=253, description="The edge pod.")
    state: TuningState = Field(
        description="Tuning; Off (the pod serves without a tuner: its log says why); "
        "Unreachable (its /tuning could not be read: message says why)."
    )
    message: str = Field(default="", max_length=1024, description="Why Off or Unreachable.")
    optimiser: str | None = Field(default=None, max_length=16, description="The optimiser.")
    emulated: bool | None = Field(
        default=None,
        description="Whether energy and clocks are an emulated device's; emulated figures are "
        "never mixed with measured ones.",
    )
    batch_size: int | None = Field(
        default=None, ge=1, le=65536, description="The batch size served."
    )
    cpu_mhz: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="The CPU clock served, when the tuner sets the clocks.",
    )
    gpu_mhz: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="The GPU clock served, when the tuner sets the clocks.",
    )
    cost: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="The latest window's cost, (E/E0 + L/L0) / 2: 1 is the maximum settings' "
        "cost at the same load, lower is better.",
    )
    latency_ms: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="The latest window's mean latency, queueing included.",
    )
    energy_j_per_request: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="The latest window's energy per request, joules.",
    )
    converged: bool | None = Field(default=None, description="Whether the optimiser converged.")
    windows: int | None = Field(default=None, ge=0, description="Windows measured so far.")


class TuningStatus(Spec):
    """The edge pods' knob tuners (DeviceProfile spec.tuning), read by the operator."""

    updated_at: str = Field(
        max_length=64,
        description="When these figures were read; the operator writes them only when one changed.",
    )
    cost: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="Mean latest cost over the pods that tune.",
    )
    pods: tuple[PodTuning, ...] = Field(
        default=(), max_length=MAX_TUNING_PODS, description="Each edge pod, by name."
    )
    unlisted_pods: int = Field(
        default=0, ge=0, description=f"Edge pods beyond the first {MAX_TUNING_PODS}, not read."
    )


AdaptationState = Literal["Adapting", "Off", "Unreachable"]


class PodAdaptation(Spec):
    """One edge pod's operating point, as its `GET /adaptation` answered when last read."""

    pod: str = Field(max_length=253, description="The edge pod.")
    state: AdaptationState = Field(
        description="Adapting; Off (the pod serves no operating space); Unreachable (its "
        "/adaptation could not be read: message says why)."
    )
    message: str = Field(default="", max_length=1024, description="Why Off or Unreachable.")
    mode: str | None = Field(default=None, max_length=16, description="follow, off or oracle.")
    split: int | None = Field(default=None, ge=0, le=100_000, description="The cut split at.")
    edge_exits: tuple[int, ...] | None = Field(
        default=None, max_length=3, description="Active edge exits (cut indices)."
    )
    cloud_exits: tuple[int, ...] | None = Field(
        default=None, max_length=3, description="Active cloud exits (cut indices)."
    )
    threshold: float | None = Field(
        default=None, ge=0, le=1, allow_inf_nan=False, description="The point's c_thr."
    )
    bandwidth_mbps: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="The link the edge estimates."
    )
    rtt_ms: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="The RTT the edge estimates."
    )
    feasible: bool | None = Field(
        default=None, description="Whether the point meets the objective on that link."
    )
    switches: int | None = Field(default=None, ge=0, description="Moves since the pod started.")
    corrections: int | None = Field(
        default=None, ge=0, description="Maps rebuilt from the times the pod measured."
    )


class AdaptationStatus(Spec):
    """The edge pods' operating points (spec.adaptation), read by the operator."""

    updated_at: str = Field(
        max_length=64,
        description="When these figures were read; the operator writes them only when one changed.",
    )
    split: int | None = Field(
        default=None, ge=0, description="The split of the first pod that reports one."
    )
    switches: int = Field(default=0, ge=0, description="Moves of all the pods read.")
    pods: tuple[PodAdaptation, ...] = Field(
        default=(), max_length=MAX_TUNING_PODS, description="Each edge pod, by name."
    )
    unlisted_pods: int = Field(
        default=0, ge=0, description=f"Edge pods beyond the first {MAX_TUNING_PODS}, not read."
    )


POOLS_LIST: Final[JsonDict] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
}


class PoolStatus(Spec):
    """One edge pool: the version it serves, its share of the stream and its replicas."""

    name: str = Field(
        max_length=POOL_NAME_MAX, description="The pool (spec.edge.pools[].name, or edge)."
    )
    profile: str = Field(max_length=63, description="The pool's DeviceProfile.")
    version: str = Field(
        max_length=LABEL_MAX, description="Label of the version it serves (model.versions)."
    )
    share: float = Field(
        ge=0, le=1, allow_inf_nan=False, description="Its share of the request stream."
    )
    assigned_rate: float = Field(
        ge=0, allow_inf_nan=False, description="Requests a second it is assigned."
    )
    measured_rate: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="Requests a second it served, as last measured.",
    )
    replicas: int = Field(default=0, ge=0, description="Pods wanted.")
    ready_replicas: int | None = Field(
        default=None, ge=0, description="Pods passing their readiness probe."
    )


class DistributionStatus(Spec):
    """The distribution in effect (spec.distribution): the rate planned and whether it meets
    the target."""

    target_rate: float = Field(
        gt=0, allow_inf_nan=False, description="spec.distribution.targetRate, requests a second."
    )
    planned_rate: float = Field(
        ge=0, allow_inf_nan=False, description="Requests a second the pools are assigned."
    )
    accuracy: float | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Mean accuracy expected over the requests, by share.",
    )
    met: bool = Field(description="Whether the planned rate covers the target.")
    reason: str | None = Field(
        default=None, max_length=1024, description="Why the target is not met, in short."
    )
    cause: str = Field(
        max_length=1024,
        description="Why the shares were last decided, e.g. `pool nano: 1 -> 0 replicas`.",
    )
    decided_at: str | None = Field(
        default=None, max_length=64, description="When they were decided (RFC 3339)."
    )


class InferencePipelineStatus(Spec):
    """What the operator observed; conditions drive `kubectl wait --for=condition=Ready`."""

    phase: Phase = Field(default="Pending", description="Where the pipeline is in its lifecycle.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status describes."
    )
    conditions: tuple[Condition, ...] = Field(
        default=(),
        max_length=32,
        json_schema_extra=CONDITIONS_LIST,
        description="Profiled, Planned, ExitsTrained, ArtifactsStored, EdgeReady, CloudReady, "
        "Ready (metav1.Condition shape).",
    )
    plan: PlanSummary | None = Field(default=None, description="The plan in effect.")
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="The confidence threshold c_thr in effect."
    )
    artifacts: ArtifactRef | None = Field(
        default=None, description="The committed artifact set the parts serve."
    )
    edge: PartStatus | None = Field(default=None, description="The edge Deployment.")
    pools: tuple[PoolStatus, ...] = Field(
        default=(),
        max_length=MAX_POOLS,
        json_schema_extra=POOLS_LIST,
        description="Each edge pool, by name: its version, share and replicas.",
    )
    distribution: DistributionStatus | None = Field(
        default=None, description="The distribution in effect (spec.distribution)."
    )
    cloud: PartStatus | None = Field(default=None, description="The cloud Deployment.")
    offload_ratio: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Share of samples the edge is expected to offload at the threshold in "
        "effect, from the calibration (the live share is on /metrics: inferedge_offload_ratio).",
    )
    message: str = Field(default="", max_length=32768, description="Last notable event.")
    tuning: TuningStatus | None = Field(
        default=None,
        description="The edge pods' knob tuners; written by the operator's tuning reader, "
        "apart from the rest of the status.",
    )
    adaptation: AdaptationStatus | None = Field(
        default=None,
        description="The edge pods' operating points (spec.adaptation); written by the "
        "operator's adaptation reader, apart from the rest of the status.",
    )
    kopf: dict[str, Any] | None = Field(
        default=None, description="The operator framework's own bookkeeping; not an API."
    )
