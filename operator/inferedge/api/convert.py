"""From custom-resource specs to the planner's inputs: plain functions, no I/O."""

from __future__ import annotations

from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.core.link import Link
from inferedge.core.plan import Plan, PlanRequest
from inferedge.core.planner import make_plan
from inferedge.core.profile import MeasuredProfile
from inferedge.core.space_plan import make_space_plan


def link_for(spec: InferencePipelineSpec, edge: DeviceProfileSpec) -> Link:
    """The pipeline's link, else the edge profile's declared link, else the planner's default."""
    declared = spec.partitioning.link or edge.link
    if declared is None:
        return Link()
    return Link(bandwidth_mbps=declared.bandwidth_mbps, rtt_ms=declared.rtt_ms)


def plan_request(spec: InferencePipelineSpec, edge: DeviceProfileSpec) -> PlanRequest:
    """The PlanRequest an InferencePipeline asks for."""
    part, exits = spec.partitioning, spec.exits
    return PlanRequest(
        strategy=part.strategy,
        placement=exits.placement,
        edge_exits=exits.edge,
        cloud_exits=exits.cloud,
        link=link_for(spec, edge),
        batch_size=part.batch_size,
        memory_fraction=part.memory_fraction,
        deadline_ms=part.deadline_ms,
        pareto_alpha=exits.pareto_alpha,
    )


def pipeline_plan(
    spec: InferencePipelineSpec,
    edge_device: DeviceProfileSpec,
    edge: MeasuredProfile,
    cloud: MeasuredProfile,
) -> Plan:
    """The plan a pipeline is built from: its one planned point, or with `spec.adaptation`
    the space plan over its candidate exits."""
    request = plan_request(spec, edge_device)
    if spec.adaptation is None:
        return make_plan(edge, cloud, request)
    return make_space_plan(edge, cloud, request, candidate_count=spec.adaptation.candidate_exits)
