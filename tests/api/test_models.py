"""The custom-resource models and the manifest loader: what users write in YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inferedge.api.documents import DocumentError, parse_documents

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "examples" / "digits-pipeline.yaml").read_text()


def edited(path: list[str | int], value: object, doc: int = 2) -> str:
    """The example with one field of document `doc` replaced (or removed if value is ...)."""
    docs = list(yaml.safe_load_all(EXAMPLE))
    target = docs[doc]
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return yaml.safe_dump_all(docs)


def test_the_example_parses_with_camel_case_fields() -> None:
    docs = parse_documents(EXAMPLE, "example")
    (pipeline,) = docs.pipelines
    assert pipeline.metadata.namespace == "default"
    assert pipeline.spec.model.input_shape == (3, 16, 16)
    assert pipeline.spec.exits.placement == "pareto"
    assert pipeline.spec.exits.head.preset == "sdn"
    edge = docs.profile(pipeline.spec.edge.reference.profile, "default", "example")
    assert edge.spec.role == "edge"
    assert edge.spec.link is not None
    assert edge.spec.link.bandwidth_mbps == 8
    assert edge.spec.emulation.memory_mib == 8192
    dumped = pipeline.model_dump(by_alias=True, exclude_none=True)
    assert dumped["spec"]["model"]["inputShape"] == (3, 16, 16)


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (["spec", "exits", "edge"], 4, "spec.exits.edge"),
        (
            ["spec", "exits", "head"],
            {"layers": [{"type": "python", "code": "x"}]},
            "spec.exits.head",
        ),
        (["spec", "exits", "head"], {"preset": "sdn", "exec": "rm -rf /"}, "spec.exits.head.exec"),
        (["spec", "partitioning", "strategy"], "fastest", "spec.partitioning.strategy"),
        (["spec", "partitioning"], {"strategy": "deadline"}, "needs deadlineMs"),
        (["spec", "inference"], {"threshold": 0.5, "targetAccuracy": 0.9}, "not both"),
        (["spec", "cloud", "profile"], "jetson-orin-nano", "different DeviceProfiles"),
        (["spec", "model", "inputShape"], [3, 0, 16], "inputShape"),
        (["spec", "model", "unknownField"], 1, "spec.model.unknownField"),
        (["metadata", "name"], "Not_A_Label", "metadata.name"),
        (["spec", "edge"], ..., "spec.edge"),
    ],
)
def test_bad_pipelines_name_the_field(path: list[str], value: object, fragment: str) -> None:
    with pytest.raises(DocumentError) as err:
        parse_documents(edited(path, value), "p.yaml")
    message = str(err.value)
    assert message.startswith("p.yaml document 3 InferencePipeline")
    assert fragment in message
    assert "\n" not in message


def test_wrong_api_version_and_kind_are_named() -> None:
    with pytest.raises(DocumentError, match=r"apiVersion is 'inferedge\.io/v2'"):
        parse_documents(edited(["apiVersion"], "inferedge.io/v2"), "p.yaml")
    with pytest.raises(DocumentError, match="kind is 'Pipeline', expected one of"):
        parse_documents(edited(["kind"], "Pipeline"), "p.yaml")


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(DocumentError, match=r"p\.yaml: not valid YAML at line 3"):
        parse_documents("a: 1\nb: [\n", "p.yaml")


def test_missing_profile_lists_what_exists() -> None:
    docs = parse_documents(EXAMPLE, "p.yaml")
    with pytest.raises(DocumentError, match=r"no DeviceProfile 'orin' .*found: jetson-orin-nano"):
        docs.profile("orin", "default", "p.yaml")


def test_device_profile_checks_batch_sizes() -> None:
    with pytest.raises(DocumentError, match="batchSizes must be distinct"):
        parse_documents(edited(["spec", "profiling", "batchSizes"], [1, 1], doc=0), "p.yaml")


def test_plan_request_takes_the_edge_link_unless_the_pipeline_overrides_it() -> None:
    from inferedge.api.convert import plan_request

    docs = parse_documents(EXAMPLE, "p.yaml")
    (pipeline,) = docs.pipelines
    edge = docs.profile("jetson-orin-nano", "default", "p.yaml").spec
    request = plan_request(pipeline.spec, edge)
    assert (request.link.bandwidth_mbps, request.link.rtt_ms) == (8, 40)
    assert (request.edge_exits, request.cloud_exits, request.placement) == (2, 1, "pareto")
    overridden = parse_documents(
        edited(["spec", "partitioning"], {"link": {"bandwidthMbps": 20, "rttMs": 5}}), "p.yaml"
    ).pipelines[0]
    assert plan_request(overridden.spec, edge).link.bandwidth_mbps == 20


def test_status_scalars_for_printer_columns_are_derived() -> None:
    from inferedge.api.device_profile import DeviceProfileStatus
    from inferedge.api.pipeline_status import PlanSummary

    summary = PlanSummary(
        hash="abc",
        split=4,
        split_name="layer2",
        edge_exits=(1, 2),
        cloud_exits=(6,),
        predicted_latency_ms=12.5,
    )
    assert summary.exits == "2+1"
    assert PlanSummary.model_validate(summary.model_dump(by_alias=True)).exits == "2+1"
    status = DeviceProfileStatus.model_validate(
        {
            "results": [
                {"model": "a", "uri": "s3://b/a.json", "profiledAt": "2026-01-02T00:00:00Z"},
                {"model": "b", "uri": "s3://b/b.json", "profiledAt": "2026-01-03T00:00:00Z"},
            ]
        }
    )
    assert status.profiled_at == "2026-01-03T00:00:00Z"
    assert DeviceProfileStatus().profiled_at is None
