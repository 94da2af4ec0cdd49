"""The operator reads the edge through its reference pool (the first), so a single-pool
pipeline behaves as before and a pipeline with pools names the field it reads (issue #15)."""

from __future__ import annotations

from typing import Any

import pytest

from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.controller import pipeline_inputs
from inferedge.controller.cache import Indices, ObjectCache
from inferedge.controller.views import PipelineView
from inferedge.core.facts import Failure
from tests.controller.test_builders import _deployment, example

POOLS = [
    {"name": "nano", "profile": "jetson-nano", "replicas": 3},
    {"name": "pi4", "profile": "raspberry-pi4", "replicas": 5},
]


def with_edge(edge: dict[str, Any]) -> InferencePipelineSpec:
    spec = example()[2]
    return InferencePipelineSpec.model_validate({**spec.model_dump(by_alias=True), "edge": edge})


@pytest.mark.parametrize(
    ("edge", "replicas"),
    [({"profile": "jetson-orin-nano", "replicas": 4}, 4), ({"pools": POOLS}, 3)],
    ids=["single", "pools"],
)
def test_the_edge_deployment_has_the_reference_pool_s_replicas(
    edge: dict[str, Any], replicas: int
) -> None:
    assert _deployment("edge", with_edge(edge))["spec"]["replicas"] == replicas
    assert _deployment("cloud", with_edge(edge))["spec"]["replicas"] == 2  # the example's


@pytest.mark.parametrize(
    ("edge", "field"),
    [
        ({"profile": "jetson-orin-nano"}, "spec.edge.profile"),
        ({"pools": POOLS}, "spec.edge.pools[0].profile"),
    ],
    ids=["single", "pools"],
)
def test_a_missing_edge_profile_names_the_field_it_was_read_from(
    edge: dict[str, Any], field: str
) -> None:
    empty = ObjectCache(Indices(pipelines={}, device_profiles={}, jobs={}, deployments={}))
    spec = with_edge(edge)
    profile = spec.edge.reference.profile
    failed = pipeline_inputs.device_profile(
        empty, "team-a", profile, pipeline_inputs.pool_field(spec, 0), "edge"
    )
    assert isinstance(failed, Failure)
    assert failed.reason == "DeviceProfileNotFound"
    assert failed.message == f"{field}: no DeviceProfile {profile!r} in namespace 'team-a'"
    cloud = pipeline_inputs.cloud_profile(empty, "team-a", spec)
    assert isinstance(cloud, Failure)
    assert cloud.message.startswith("spec.cloud.profile: ")


def test_a_pipeline_refers_to_every_profile_it_names() -> None:
    def refs(edge: object) -> tuple[str, ...]:
        body = {"metadata": {"name": "p"}, "spec": {"edge": edge, "cloud": {"profile": "cpu"}}}
        return PipelineView.from_body(body).profile_refs

    assert refs({"profile": "nano"}) == ("nano", "cpu")
    assert refs({"pools": [*POOLS, {"name": "more", "profile": "jetson-nano"}]}) == (
        "jetson-nano",
        "raspberry-pi4",
        "cpu",
    )
    assert refs({"pools": "not a list"}) == ("cpu",)
    assert refs(None) == ("cpu",)
