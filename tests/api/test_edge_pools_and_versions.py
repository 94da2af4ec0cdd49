"""Several edge pools, the model's versions and the distribution target: what the spec reads
as, and what the status of a distributed site parses as (issue #15)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from inferedge.api.edge_pools import DistributionSpec, EdgePool, EdgeSpec
from inferedge.api.model_spec import ModelSpec, ModelVersion
from inferedge.api.pipeline import InferencePipeline, InferencePipelineSpec
from inferedge.api.pipeline_status import InferencePipelineStatus
from inferedge.core.errors import describe_validation_error

MODEL = {"name": "resnet18", "inputShape": [3, 8, 8]}
POOLS = [
    {"name": "nano", "profile": "jetson-nano", "replicas": 2},
    {"name": "xu4", "profile": "odroid-xu4"},
    {"name": "pi4", "profile": "raspberry-pi4", "replicas": 0},
]


def spec(**fields: Any) -> dict[str, Any]:
    base = {"model": MODEL, "edge": {"profile": "jetson-nano"}, "cloud": {"profile": "cloud"}}
    return base | fields


def refusal(data: dict[str, Any]) -> str:
    """The one line a user sees for an invalid spec."""
    with pytest.raises(ValidationError) as err:
        InferencePipelineSpec.model_validate(data)
    return describe_validation_error(err.value, "p.yaml")


def test_the_single_form_is_one_pool_named_edge_with_the_old_defaults() -> None:
    edge = InferencePipelineSpec.model_validate(spec()).edge
    assert (edge.profile, edge.replicas, edge.pools) == ("jetson-nano", 1, None)
    assert edge.resolved_pools() == (EdgePool(name="edge", profile="jetson-nano", replicas=1),)
    assert edge.reference == EdgePool(name="edge", profile="jetson-nano")
    assert edge.reference_field() == "spec.edge.profile"
    assert edge.reference_field("replicas") == "spec.edge.replicas"
    three = InferencePipelineSpec.model_validate(spec(edge={"profile": "a", "replicas": 3}))
    assert three.edge.reference.replicas == 3
    dumped = three.model_dump(by_alias=True, exclude_none=True)["edge"]
    assert dumped == {"profile": "a", "replicas": 3}


def test_the_pools_form_keeps_order_and_the_first_is_the_reference() -> None:
    edge = InferencePipelineSpec.model_validate(spec(edge={"pools": POOLS})).edge
    assert [(p.name, p.profile, p.replicas) for p in edge.resolved_pools()] == [
        ("nano", "jetson-nano", 2),
        ("xu4", "odroid-xu4", 1),
        ("pi4", "raspberry-pi4", 0),
    ]
    assert edge.reference.name == "nano"
    assert edge.profile is None
    assert edge.reference_field() == "spec.edge.pools[0].profile"
    assert edge.reference_field("replicas") == "spec.edge.pools[0].replicas"


@pytest.mark.parametrize(
    "edge",
    [{}, {"replicas": 2}, {"profile": "jetson-nano", "pools": POOLS}],
    ids=["empty", "replicas only", "both forms"],
)
def test_neither_or_both_forms_are_refused_in_one_line_naming_the_field(
    edge: dict[str, Any],
) -> None:
    line = refusal(spec(edge=edge))
    assert line.startswith("p.yaml: edge: ")
    assert line.endswith("give exactly one of profile (one pool) or pools")
    assert "\n" not in line


def test_pools_are_refused_twice_by_name_or_on_the_cloud_s_profile() -> None:
    twice = [*POOLS, {"name": "xu4", "profile": "other"}]
    assert refusal(spec(edge={"pools": twice})).endswith(
        "edge: Value error, pool names must be unique"
    )
    on_cloud = [*POOLS, {"name": "big", "profile": "cloud"}]
    assert "no edge pool may use cloud.profile" in refusal(spec(edge={"pools": on_cloud}))
    assert "no edge pool may use cloud.profile" in refusal(spec(edge={"profile": "cloud"}))
    assert "edge.pools" in refusal(spec(edge={"pools": []}))
    assert "edge.pools.0.name" in refusal(spec(edge={"pools": [{"name": "N", "profile": "a"}]}))
    assert "edge.replicas" in refusal(spec(edge={"profile": "a", "replicas": -1}))
    EdgeSpec.model_validate({"pools": POOLS, "replicas": 1})  # the API server's default


def test_versions_have_labels_and_the_model_comes_first() -> None:
    model = ModelSpec.model_validate(
        MODEL
        | {
            "weightsUri": "s3://w/resnet18.pt",
            "versions": [
                {"name": "mobilenet_v2"},
                {"name": "resnet18", "exit": 1},
                {"name": "mine", "uri": "s3://m/mine.pt2", "weightsUri": "s3://m/w.pt"},
            ],
        }
    )
    assert [v.label for v in model.all_versions()] == [
        "resnet18",
        "mobilenet_v2",
        "resnet18-exit1",
        "mine",
    ]
    itself = model.all_versions()[0]
    assert itself == ModelVersion(name="resnet18", weights_uri="s3://w/resnet18.pt")
    assert model.all_versions()[3].uri == "s3://m/mine.pt2"
    assert ModelSpec.model_validate(MODEL).all_versions() == (ModelVersion(name="resnet18"),)


@pytest.mark.parametrize(
    ("versions", "exits", "fragment"),
    [
        ([{"name": "resnet1000"}], 1, "each version's name must be a zoo model"),
        ([{"name": "small_resnet", "framework": "torch"}], 1, "model.versions.0.framework"),
        ([{"name": "mine", "uri": "s3://m/mine.keras"}], 1, "each version's uri must be"),
        ([{"name": "vgg11", "exit": 1}], 1, "a version with exit is the model itself"),
        ([{"name": "resnet18", "exit": 1, "uri": "s3://m/r.pt2"}], 1, "without uri"),
        ([{"name": "resnet18"}], 1, "may not be the model itself"),
        ([{"name": "vgg11"}, {"name": "vgg11"}], 1, "versions must differ"),
        ([{"name": "resnet18", "exit": 2}], 1, "at most exits.edge"),
        ([{"name": "resnet18", "exit": 3}], 2, "at most exits.edge"),
        ([{"name": "resnet18", "exit": 4}], 3, "model.versions.0.exit"),
        ([{"name": "vgg11"}] * 9, 1, "model.versions"),
    ],
)
def test_bad_versions_are_refused(
    versions: list[dict[str, Any]], exits: int, fragment: str
) -> None:
    data = spec(model=MODEL | {"versions": versions}, exits={"edge": exits})
    line = refusal(data)
    assert fragment in line, line
    assert "\n" not in line


def test_a_truncated_version_may_use_any_edge_exit() -> None:
    versions = [{"name": "resnet18", "exit": k} for k in (1, 2, 3)]
    parsed = InferencePipelineSpec.model_validate(
        spec(model=MODEL | {"versions": versions}, exits={"edge": 3})
    )
    assert [v.label for v in parsed.model.versions] == [
        "resnet18-exit1",
        "resnet18-exit2",
        "resnet18-exit3",
    ]


def test_the_distribution_has_its_defaults_and_bounds() -> None:
    parsed = InferencePipelineSpec.model_validate(spec(distribution={"targetRate": 50}))
    assert parsed.distribution == DistributionSpec(
        target_rate=50, min_accuracy=0.0, max_utilization=0.9, drift_bound=0.2
    )
    assert InferencePipelineSpec.model_validate(spec()).distribution is None
    DistributionSpec(target_rate=1e6, min_accuracy=1, max_utilization=1, drift_bound=0.99)
    for bad, field in [
        ({}, "targetRate"),
        ({"targetRate": 0}, "targetRate"),
        ({"targetRate": 1e6 + 1}, "targetRate"),
        ({"targetRate": 5, "minAccuracy": -0.1}, "minAccuracy"),
        ({"targetRate": 5, "maxUtilization": 0}, "maxUtilization"),
        ({"targetRate": 5, "driftBound": 1}, "driftBound"),
    ]:
        assert f"distribution.{field}" in refusal(spec(distribution=bad)), bad


STATUS = {
    "phase": "Ready",
    "pools": [
        {
            "name": "nano",
            "profile": "jetson-nano",
            "version": "resnet18",
            "share": 0.5,
            "assignedRate": 25.0,
            "measuredRate": 24.1,
            "replicas": 2,
            "readyReplicas": 2,
        },
        {
            "name": "pi4",
            "profile": "raspberry-pi4",
            "version": "resnet18-exit1",
            "share": 0.5,
            "assignedRate": 25.0,
        },
    ],
    "distribution": {
        "targetRate": 50,
        "plannedRate": 50,
        "accuracy": 0.93,
        "met": True,
        "cause": "pool nano: 1 -> 2 replicas",
        "decidedAt": "2026-01-02T03:04:05Z",
    },
}


def test_the_status_of_a_distributed_site_parses_camel_case() -> None:
    status = InferencePipelineStatus.model_validate(STATUS)
    nano, pi4 = status.pools
    assert (nano.assigned_rate, nano.measured_rate, nano.ready_replicas) == (25.0, 24.1, 2)
    assert (pi4.version, pi4.measured_rate, pi4.replicas, pi4.ready_replicas) == (
        "resnet18-exit1",
        None,
        0,
        None,
    )
    assert status.distribution is not None
    assert (status.distribution.planned_rate, status.distribution.met) == (50, True)
    assert status.distribution.reason is None
    assert status.distribution.decided_at == "2026-01-02T03:04:05Z"
    dumped = status.model_dump(by_alias=True, exclude_none=True)
    assert dumped["pools"][0]["assignedRate"] == 25.0
    assert dumped["distribution"]["decidedAt"] == "2026-01-02T03:04:05Z"


def test_a_status_from_before_the_pools_still_parses() -> None:
    status = InferencePipelineStatus.model_validate({"phase": "Ready", "message": "ok"})
    assert (status.pools, status.distribution) == ((), None)
    with pytest.raises(ValidationError, match="share"):
        InferencePipelineStatus.model_validate(
            {"pools": [{**STATUS["pools"][1], "share": 1.5}]}  # type: ignore[dict-item]
        )


def test_a_manifest_with_pools_loads_whole() -> None:
    doc = {
        "apiVersion": "inferedge.io/v1alpha1",
        "kind": "InferencePipeline",
        "metadata": {"name": "site"},
        "spec": spec(edge={"pools": POOLS}, distribution={"targetRate": 8}),
    }
    pipeline = InferencePipeline.model_validate(doc)
    assert pipeline.spec.edge.reference.profile == "jetson-nano"
    assert pipeline.spec.distribution is not None
    assert pipeline.spec.distribution.target_rate == 8


def test_pools_versions_and_distribution_retrain_nothing() -> None:
    from inferedge.api.device_profile import DeviceProfileSpec
    from inferedge.api.keys import profiling_key, training_key

    single = InferencePipelineSpec.model_validate(spec())
    site = InferencePipelineSpec.model_validate(
        spec(
            edge={"pools": POOLS},
            model=MODEL | {"versions": [{"name": "vgg11"}, {"name": "resnet18", "exit": 1}]},
            distribution={"targetRate": 8},
        )
    )
    device = DeviceProfileSpec.model_validate({"role": "edge"})
    assert training_key(site, "0" * 16) == training_key(single, "0" * 16)
    assert profiling_key(site, device) == profiling_key(single, device)
