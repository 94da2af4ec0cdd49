"""The generated CRDs: in sync with the models, structural, valid CRD objects, usable columns."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from inferedge.api.base import API_GROUP, GROUP_VERSION
from inferedge.api.crd import main
from inferedge.api.crd_kinds import KINDS, Kind
from inferedge.api.crd_reference import reference_markdown
from inferedge.api.crd_schema import crd_files, structural_schema
from tests.api.apiserver import ROOT

CHART_CRDS = ROOT / "charts" / "inferedge" / "crds"
# Keywords a structural schema may use (apiextensions.k8s.io/v1 JSONSchemaProps we emit).
ALLOWED_KEYS = {
    "type", "description", "default", "enum", "required", "properties", "items",
    "additionalProperties", "anyOf", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
    "maxProperties", "format", "x-kubernetes-validations", "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}  # fmt: skip
RULE_KEYS = {"rule", "message", "messageExpression", "reason", "fieldPath"}


def committed(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "crds" / name).read_text())
    return loaded


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node below `schema` (itself included) with its dotted path."""
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from nodes(prop, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from nodes(schema[key], f"{path}[]")


def test_committed_crds_match_the_models() -> None:
    files = crd_files()
    assert sorted(files) == sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    for name, text in files.items():
        assert (ROOT / "crds" / name).read_text() == text, (
            f"crds/{name} drifted from inferedge.api: run `python -m inferedge.api.crd --out crds "
            "--out charts/inferedge/crds --docs docs/crd-reference.md`"
        )


def test_the_chart_ships_byte_identical_crds() -> None:
    ours = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in CHART_CRDS.glob("*.yaml")}
    assert chart == ours


def test_check_mode_reports_drift_in_one_line(tmp_path: Path) -> None:
    lines: list[str] = []
    assert main(["--out", str(tmp_path)], echo=lines.append) == 0
    assert main(["--check", "--out", str(tmp_path)], echo=lines.append) == 0
    stale = tmp_path / "inferedge.io_deviceprofiles.yaml"
    stale.write_text(stale.read_text().replace("dprof", "dp"))
    assert main(["--check", "--out", str(tmp_path)], echo=lines.append) == 1
    assert lines[-1].startswith("stale generated files: ")
    assert str(stale) in lines[-1]
    assert "\n" not in lines[-1]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_crd_is_a_valid_kubernetes_object(kind: Kind) -> None:
    document = committed(kind.filename)
    kubernetes_validate.validate(document, "1.37.0", strict=True)
    assert document["metadata"]["name"] == kind.crd_name
    spec = document["spec"]
    assert spec["group"] == API_GROUP
    (version,) = spec["versions"]
    assert f"{spec['group']}/{version['name']}" == GROUP_VERSION
    assert version["subresources"] == {"status": {}}
    assert spec["names"]["categories"] == ["inferedge"]
    assert spec["scope"] == "Namespaced"


def test_names_users_rely_on() -> None:
    names = {k.kind: committed(k.filename)["spec"]["names"] for k in KINDS}
    assert names["InferencePipeline"]["shortNames"] == ["ipl"]
    assert names["DeviceProfile"]["shortNames"] == ["dprof"]
    ipl_columns = [
        c["name"]
        for c in committed(KINDS[0].filename)["spec"]["versions"][0]["additionalPrinterColumns"]
        if not c.get("priority")
    ]
    assert ipl_columns == ["Phase", "Split", "Exits", "Threshold", "Offload", "Ready", "Age"]
    dprof = committed(KINDS[1].filename)["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in dprof if not c.get("priority")] == [
        "Role", "Node", "Profiled", "Age",
    ]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_schema_is_structural_and_fully_described(kind: Kind) -> None:
    schema = committed(kind.filename)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    assert "$ref" not in text
    assert "x-inferedge" not in text, "generator-only tags leaked into the CRD"
    for path, node in nodes(schema):
        unknown = set(node) - ALLOWED_KEYS
        assert not unknown, f"{path}: keywords {unknown} are not structural"
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert "type" in node, f"{path}: every structural node needs a type"
            assert "anyOf" not in node, path
        assert not ("properties" in node and "additionalProperties" in node), path
        for rule in node.get("x-kubernetes-validations", []):
            assert set(rule) <= RULE_KEYS, path
            assert {"rule", "message"} <= set(rule), path
            if "fieldPath" in rule:
                field = rule["fieldPath"].lstrip(".")
                assert field.split(".")[0] in node.get("properties", {}), (path, rule)
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            assert set(keys) <= set(node["items"]["required"]), path
    for name, prop in schema["properties"]["spec"]["properties"].items():
        for path, node in nodes(prop, f"spec.{name}"):
            if not path.endswith("[]"):
                assert node.get("description"), f"{path} has no description"
    for path, node in nodes(schema["properties"]["status"], "status"):
        if not path.endswith("[]"):
            assert node.get("description"), f"{path} has no description"


def test_rules_bound_the_strings_and_lists_they_touch() -> None:
    # The API server estimates a rule's cost from maxLength/maxItems and refuses a CRD whose
    # rules could be too expensive; every node a rule iterates must therefore be bounded.
    for kind in KINDS:
        schema = committed(kind.filename)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in nodes(schema):
            for rule in node.get("x-kubernetes-validations", []):
                for field in re.findall(
                    r"self\.(\w+)\.(?:all|exists|exists_one|map)\(", rule["rule"]
                ):
                    assert "maxItems" in node["properties"][field], f"{path}.{field}"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_printer_columns_point_at_schema_fields(kind: Kind) -> None:
    version = committed(kind.filename)["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    for column in version["additionalPrinterColumns"]:
        path = column["jsonPath"]
        if path.startswith(".metadata."):
            continue
        node = schema
        for part in re.sub(r"\[\?.*?\]", "", path).strip(".").split("."):
            node = node.get("items", node)
            assert part in node.get("properties", {}), f"{column['name']}: {path}"
            node = node["properties"][part]
        expected = {"number": "number", "integer": "integer", "string": "string", "date": "string"}[
            column["type"]
        ]
        assert node["type"] == expected, column["name"]


def test_ready_column_reads_the_conditions_list_map() -> None:
    version = committed(KINDS[0].filename)["spec"]["versions"][0]
    conditions = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"][
        "conditions"
    ]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    ready = next(c for c in version["additionalPrinterColumns"] if c["name"] == "Ready")
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


def test_reference_doc_matches_the_models() -> None:
    assert (ROOT / "docs" / "crd-reference.md").read_text() == reference_markdown(), (
        "docs/crd-reference.md drifted: run `python -m inferedge.api.crd --docs "
        "docs/crd-reference.md`"
    )


def test_reference_doc_names_every_spec_field_and_rule() -> None:
    text = reference_markdown()
    for kind in KINDS:
        schema = structural_schema(kind.model)
        for path, node in nodes(schema["properties"]["spec"], "spec"):
            if node.get("properties"):
                assert f"#### `{path.replace('.[]', '[]')}`" in text, path
            for rule in node.get("x-kubernetes-validations", []):
                assert rule["message"] in text
