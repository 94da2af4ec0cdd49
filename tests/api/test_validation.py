"""The API server (emulated from the committed CRDs) and pydantic agree on every object.

Every cross-field check a pydantic validator makes must have a CEL rule that mirrors it, with
the same message, so a user gets the same one-line answer from `kubectl apply` as from
`inferedge run`.
"""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from inferedge.api import crd_kinds, crd_schema
from inferedge.api.documents import KINDS
from inferedge.api.model_spec import TRUNCATED_RULE, VERSION_NAME_RULE, VERSION_URI_RULE
from inferedge.api.pipeline import TRUNCATED_EXIT_RULE
from inferedge.core.zoo import NAME_RULE, URI_RULE
from tests.api.apiserver import CEL_KEY, ROOT, admit, cel_errors, compile_rule, load_crd_schema

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
Obj = dict[str, Any]


def inferedge_objects(path: Path) -> list[Obj]:
    """The inferedge.io objects of one manifest file."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return [d for d in docs if str(d.get("apiVersion", "")).startswith("inferedge.io/")]


DIGITS = inferedge_objects(ROOT / "examples" / "digits-pipeline.yaml")
EDGE, CLOUD, PIPELINE = DIGITS


def with_field(obj: Obj, path: str, value: object) -> Obj:
    """A copy of `obj` with the dotted `path` set to `value`."""
    out = copy.deepcopy(obj)
    target = out
    *parents, last = path.split(".")
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = value
    return out


def pydantic_error(obj: Obj) -> str | None:
    """pydantic's complaint about `obj`, or None when it accepts it."""
    try:
        KINDS[obj["kind"]].model_validate(obj)
    except ValidationError as exc:
        return str(exc)
    return None


def server_errors(obj: Obj, *, cel: bool = True) -> list[str]:
    return admit(load_crd_schema(obj["kind"]), obj, cel=cel)


LAYERS = [
    {"type": "conv2d", "out_channels": 32, "padding": 1},
    {"type": "batchnorm"},
    {"type": "relu"},
    {"type": "maxpool", "kernel_size": 2, "ceil_mode": True},
    {"type": "adaptive_pool", "mode": "mixed", "output_size": 2},
    {"type": "flatten"},
    {"type": "dropout", "p": 0.2},
    {"type": "linear", "out_features": 64},
    {"type": "linear", "out_features": "num_classes"},
]
POOLS = [
    {"name": "nano", "profile": "jetson-nano", "replicas": 2},
    {"name": "xu4", "profile": "odroid-xu4"},
    {"name": "pi4", "profile": "raspberry-pi4"},
]
TRUNCATED = {"name": "resnet18", "exit": 2}
GOOD: list[tuple[str, Obj]] = [
    ("deadline with its budget", with_field(PIPELINE, "spec.partitioning",
        {"strategy": "deadline", "deadlineMs": 120})),
    ("threshold alone", with_field(PIPELINE, "spec.inference", {"threshold": 0.8})),
    ("target accuracy alone", with_field(PIPELINE, "spec.inference", {"targetAccuracy": 0.95})),
    ("explicit layers", with_field(PIPELINE, "spec.exits.head", {"layers": LAYERS})),
    ("minimal spec", {**PIPELINE, "spec": {"model": {"name": "resnet18", "inputShape": [3, 8, 8]},
        "edge": {"profile": "a"}, "cloud": {"profile": "b"}}}),
    ("integer quantities", with_field(CLOUD, "spec.resources", {"requests": {"cpu": 2},
        "limits": {"memory": "4Gi", "nvidia.com/gpu": 1}})),
    ("keyless Exists toleration", with_field(EDGE, "spec.tolerations", [{"operator": "Exists"}])),
    ("several batch sizes", with_field(EDGE, "spec.profiling", {"batchSizes": [1, 4, 8]})),
    ("tuning at the defaults", with_field(EDGE, "spec.tuning", {})),
    ("tuning the batch only", with_field(EDGE, "spec.tuning", {"optimiser": "bayes",
        "clocks": False, "minBatch": 2, "maxBatch": 2, "cpu": {"maxKhz": 1400000}})),
    ("emulated knobs", with_field(EDGE, "spec.emulation.knobs", {"cpuMhz": {"lowMhz": 100,
        "highMhz": 2000, "steps": 20}, "gpuPerSampleMs": 3.5})),
    ("a stored torch model", with_field(PIPELINE, "spec.model",
        {"name": "mine", "uri": "s3://models/mine.pt2", "inputShape": [3, 8, 8]})),
    ("a keras zoo model", with_field(PIPELINE, "spec.model",
        {"name": "small_resnet", "framework": "tensorflow", "inputShape": [3, 8, 8]})),
    ("a stored keras model", with_field(PIPELINE, "spec.model", {"name": "mine",
        "framework": "tensorflow", "uri": "s3://models/mine.keras", "inputShape": [3, 8, 8]})),
    ("adaptation to a deadline", with_field(PIPELINE, "spec.adaptation",
        {"deadlineMs": 40, "candidateExits": 6, "linkGrid": {"bandwidthsMbps": [20, 1, 8]}})),
    ("adaptation to an accuracy floor", with_field(PIPELINE, "spec.adaptation",
        {"objective": "accuracy", "minAccuracy": 0.9, "minimise": "cloudCost"})),
    ("adaptation by priorities", with_field(PIPELINE, "spec.adaptation",
        {"objective": "priorities", "priorities": ["latency", "accuracy"]})),
    ("three edge pools", with_field(PIPELINE, "spec.edge", {"pools": POOLS})),
    ("versions and a distribution", with_field(with_field(PIPELINE, "spec.model.versions",
        [{"name": "mobilenet_v2"}, TRUNCATED, {"name": "mine", "uri": "s3://m/mine.pt2"},
         {"name": "resnet18", "exit": 1}]), "spec.distribution", {"targetRate": 50})),
    ("a truncated stored model", with_field(PIPELINE, "spec.model", {"name": "mine",
        "uri": "s3://m/mine.pt2", "inputShape": [3, 8, 8], "versions": [{"name": "mine",
        "exit": 1}]})),
]  # fmt: skip

DISTINCT = "edge and cloud must name different DeviceProfiles: no edge pool may use cloud.profile"
ONE_FORM = "give exactly one of profile (one pool) or pools"
# (what, object, message a CEL rule and the mirrored pydantic validator both give, or None when
# the OpenAPI schema itself refuses the object)
BAD: list[tuple[str, Obj, str | None]] = [
    ("code as a model", with_field(PIPELINE, "spec.model.name", "os:getpid"), None),
    ("a path as a model", with_field(PIPELINE, "spec.model.name", "/tmp/evil.pt2"), None),
    ("an unknown zoo model", with_field(PIPELINE, "spec.model.name", "resnet1000"), NAME_RULE),
    ("a pickle as a model", with_field(PIPELINE, "spec.model.uri", "s3://b/model.pkl"),
        URI_RULE),
    ("a keras file for torch", with_field(PIPELINE, "spec.model.uri", "s3://b/model.keras"),
        URI_RULE),
    ("adaptation to no deadline", with_field(PIPELINE, "spec.adaptation", {}),
        "objective 'deadline' needs deadlineMs"),
    ("adaptation to no accuracy", with_field(PIPELINE, "spec.adaptation",
        {"objective": "accuracy"}), "objective 'accuracy' needs minAccuracy"),
    ("a metric twice", with_field(PIPELINE, "spec.adaptation", {"objective": "priorities",
        "priorities": ["latency", "latency"]}), "priorities must name each metric at most once"),
    ("a grid with no bandwidth", with_field(PIPELINE, "spec.adaptation",
        {"deadlineMs": 40, "linkGrid": {"bandwidthsMbps": []}}), None),
    ("a zero bandwidth", with_field(PIPELINE, "spec.adaptation",
        {"deadlineMs": 40, "linkGrid": {"bandwidthsMbps": [0]}}), None),
    ("a negative RTT", with_field(PIPELINE, "spec.adaptation",
        {"deadlineMs": 40, "linkGrid": {"rttsMs": [-1]}}), None),
    ("no candidate exits", with_field(PIPELINE, "spec.adaptation",
        {"deadlineMs": 40, "candidateExits": 0}), None),
    ("deadline without budget", with_field(PIPELINE, "spec.partitioning",
        {"strategy": "deadline"}), "strategy 'deadline' needs deadlineMs"),
    ("threshold and target", with_field(PIPELINE, "spec.inference",
        {"threshold": 0.5, "targetAccuracy": 0.9}), "give threshold or targetAccuracy, not both"),
    ("a queue smaller than a batch", with_field(PIPELINE, "spec.inference.cloudBatching",
        {"maxBatchSize": 64, "maxQueuedSamples": 32}),
        "maxQueuedSamples must be at least maxBatchSize, or no batch could fill"),
    ("a queue smaller than the default batch", with_field(PIPELINE,
        "spec.inference.cloudBatching", {"maxQueuedSamples": 8}),
        "maxQueuedSamples must be at least maxBatchSize, or no batch could fill"),
    ("tuning in the cloud", with_field(CLOUD, "spec.tuning", {}),
        "tuning is for edge profiles: the cloud's batching is spec.inference.cloudBatching of "
        "the pipeline"),
    ("crossed batch bounds", with_field(EDGE, "spec.tuning", {"minBatch": 20}),
        "minBatch must not exceed maxBatch"),
    ("a reversed clock table", with_field(EDGE, "spec.emulation.knobs", {"gpuMhz":
        {"lowMhz": 900, "highMhz": 100, "steps": 4}}), "lowMhz must lie below highMhz"),
    ("an unknown optimiser", with_field(EDGE, "spec.tuning.optimiser", "annealing"), None),
    ("one profile for both", with_field(PIPELINE, "spec.cloud.profile", "jetson-orin-nano"),
        DISTINCT),
    ("a pool on the cloud's profile", with_field(PIPELINE, "spec.edge", {"pools": [*POOLS,
        {"name": "big", "profile": "cloud-cpu"}]}), DISTINCT),
    ("no edge form", with_field(PIPELINE, "spec.edge", {"replicas": 2}), ONE_FORM),
    ("both edge forms", with_field(PIPELINE, "spec.edge", {"profile": "jetson-nano",
        "pools": POOLS}), ONE_FORM),
    ("a pool twice", with_field(PIPELINE, "spec.edge", {"pools": [*POOLS, POOLS[0]]}),
        "pool names must be unique"),
    ("replicas beside pools", with_field(PIPELINE, "spec.edge", {"pools": POOLS,
        "replicas": 3}), "with pools, give replicas per pool: spec.edge.replicas is the "
        "single form's"),
    ("no pools", with_field(PIPELINE, "spec.edge", {"pools": []}), None),
    ("nine pools", with_field(PIPELINE, "spec.edge", {"pools": [{"name": f"p{i}",
        "profile": f"p{i}"} for i in range(9)]}), None),
    ("a pool name too long for a Deployment suffix", with_field(PIPELINE, "spec.edge",
        {"pools": [{"name": "p" * 41, "profile": "jetson-nano"}]}), None),
    ("an unknown zoo version", with_field(PIPELINE, "spec.model.versions",
        [{"name": "resnet1000"}]), VERSION_NAME_RULE),
    ("a pickle as a version", with_field(PIPELINE, "spec.model.versions",
        [{"name": "mine", "uri": "s3://m/mine.pkl"}]), VERSION_URI_RULE),
    ("another model truncated", with_field(PIPELINE, "spec.model.versions",
        [{"name": "mobilenet_v2", "exit": 1}]), TRUNCATED_RULE),
    ("a truncated version with weights", with_field(PIPELINE, "spec.model.versions",
        [{**TRUNCATED, "weightsUri": "s3://m/w.pt"}]), TRUNCATED_RULE),
    ("the model as a version", with_field(PIPELINE, "spec.model.versions",
        [{"name": "resnet18"}]), "a version without exit may not be the model itself, "
        "which is always the first version"),
    ("a version twice", with_field(PIPELINE, "spec.model.versions", [TRUNCATED, TRUNCATED]),
        "versions must differ: each name (with its exit, if any) at most once"),
    ("a zoo version twice", with_field(PIPELINE, "spec.model.versions",
        [{"name": "vgg11"}, {"name": "vgg11", "weightsUri": "s3://m/w.pt"}]),
        "versions must differ: each name (with its exit, if any) at most once"),
    ("exit 4", with_field(PIPELINE, "spec.model.versions", [{"name": "resnet18", "exit": 4}]),
        None),
    ("nine versions", with_field(PIPELINE, "spec.model.versions",
        [{"name": "m", "uri": f"s3://m/{i}.pt2"} for i in range(9)]), None),
    ("an exit beyond the edge's", with_field(PIPELINE, "spec.model.versions",
        [{"name": "resnet18", "exit": 3}]), TRUNCATED_EXIT_RULE),
    ("an exit beyond the default edge exits", {**PIPELINE, "spec": {**{k: v for k, v in
        PIPELINE["spec"].items() if k != "exits"}, "model": {**PIPELINE["spec"]["model"],
        "versions": [TRUNCATED]}}}, TRUNCATED_EXIT_RULE),
    ("a truncated version without edge exits", with_field(with_field(PIPELINE,
        "spec.model.versions", [{"name": "resnet18", "exit": 1}]), "spec.exits.edge", 0),
        TRUNCATED_EXIT_RULE),
    ("no target rate", with_field(PIPELINE, "spec.distribution", {}), None),
    ("a zero target rate", with_field(PIPELINE, "spec.distribution", {"targetRate": 0}), None),
    ("a target past 1e6", with_field(PIPELINE, "spec.distribution", {"targetRate": 2e6}), None),
    ("an accuracy above 1", with_field(PIPELINE, "spec.distribution", {"targetRate": 5,
        "minAccuracy": 1.5}), None),
    ("no utilization", with_field(PIPELINE, "spec.distribution", {"targetRate": 5,
        "maxUtilization": 0}), None),
    ("a utilization above 1", with_field(PIPELINE, "spec.distribution", {"targetRate": 5,
        "maxUtilization": 1.1}), None),
    ("a drift bound of 1", with_field(PIPELINE, "spec.distribution", {"targetRate": 5,
        "driftBound": 1}), None),
    ("no drift bound", with_field(PIPELINE, "spec.distribution", {"targetRate": 5,
        "driftBound": 0}), None),
    ("duplicate batch sizes", with_field(EDGE, "spec.profiling.batchSizes", [1, 1]),
        "batchSizes must be distinct integers in 1..4096"),
    ("Exists with a value", with_field(EDGE, "spec.tolerations",
        [{"key": "k", "operator": "Exists", "value": "v"}]),
        "a toleration with operator Exists takes no value"),
    ("keyless Equal", with_field(EDGE, "spec.tolerations", [{"value": "v"}]),
        "a toleration without a key needs operator Exists"),
    ("preset and layers", with_field(PIPELINE, "spec.exits.head",
        {"preset": "sdn", "layers": [{"type": "flatten"}]}),
        "give exactly one of 'preset' or 'layers'"),
    ("empty head", with_field(PIPELINE, "spec.exits.head", {}),
        "give exactly one of 'preset' or 'layers'"),
    ("linear of 0 features", with_field(PIPELINE, "spec.exits.head",
        {"layers": [{"type": "linear", "out_features": 0}]}),
        "out_features must be in 1..65536 or 'num_classes'"),
    ("linear of a word", with_field(PIPELINE, "spec.exits.head",
        {"layers": [{"type": "linear", "out_features": "many"}]}),
        "out_features must be in 1..65536 or 'num_classes'"),
    ("conv2d without channels", with_field(PIPELINE, "spec.exits.head",
        {"layers": [{"type": "conv2d"}]}), "type conv2d needs out_channels"),
    ("relu with channels", with_field(PIPELINE, "spec.exits.head",
        {"layers": [{"type": "relu", "out_channels": 3}]}), "type relu takes no other fields"),
    ("code as a layer", with_field(PIPELINE, "spec.exits.head",
        {"layers": [{"type": "python", "code": "x"}]}), None),
    ("four edge exits", with_field(PIPELINE, "spec.exits.edge", 4), None),
    ("unknown strategy", with_field(PIPELINE, "spec.partitioning.strategy", "fastest"), None),
    ("zero input size", with_field(PIPELINE, "spec.model.inputShape", [3, 0, 16]), None),
    ("unknown field", with_field(PIPELINE, "spec.model.unknownField", 1), None),
    ("no edge", {**PIPELINE, "spec": {k: v for k, v in PIPELINE["spec"].items() if k != "edge"}},
        None),
    ("threshold above 1", with_field(PIPELINE, "spec.inference.threshold", 1.5), None),
    ("http NATS", with_field(PIPELINE, "spec.messaging.natsUrl", "http://nats:4222"), None),
    ("bad quantity", with_field(CLOUD, "spec.resources.requests", {"cpu": "lots"}), None),
    ("bad label value", with_field(EDGE, "spec.nodeSelector", {"a": "has space"}), None),
    ("no role", {**CLOUD, "spec": {}}, None),
    ("zero memory", with_field(EDGE, "spec.emulation.memoryMiB", 0), None),
]  # fmt: skip


def test_examples_exist() -> None:
    assert EXAMPLES, "examples/*.yaml are the manifests the schema must accept"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_pass_the_schema_and_pydantic(path: Path) -> None:
    objects = inferedge_objects(path)
    assert objects
    for obj in objects:
        assert pydantic_error(obj) is None
        assert server_errors(obj, cel=False) == [], obj["metadata"]["name"]


def test_dotted_names_are_refused_by_the_root_rule() -> None:
    pytest.importorskip("celpy")
    dotted = with_field(PIPELINE, "metadata.name", "digits.v2")
    assert pydantic_error(dotted) is not None
    assert server_errors(dotted) == [
        "(root): metadata.name must be a DNS-1123 label (at most 63 characters, no dots)"
    ]


@pytest.mark.parametrize(("what", "obj"), GOOD, ids=[g[0] for g in GOOD])
def test_both_accept(what: str, obj: Obj) -> None:
    pytest.importorskip("celpy")
    assert pydantic_error(obj) is None, what
    assert server_errors(obj) == [], what


@pytest.mark.parametrize(("what", "obj", "message"), BAD, ids=[b[0] for b in BAD])
def test_both_refuse(what: str, obj: Obj, message: str | None) -> None:
    complaint = pydantic_error(obj)
    assert complaint is not None, f"pydantic accepted: {what}"
    if message is None:
        assert server_errors(obj, cel=False), f"the schema accepted: {what}"
        return
    pytest.importorskip("celpy")
    errors = server_errors(obj)
    assert any(e.endswith(f": {message}") for e in errors), errors
    # Union rules are the CRD's form of pydantic's tagged union, and a word where a number
    # belongs fails pydantic's type check before its validator: both refuse, in other words.
    if not message.startswith("type ") and what != "linear of a word":
        assert message in complaint, complaint


def test_examples_pass_the_cel_rules() -> None:
    pytest.importorskip("celpy")
    for path in EXAMPLES:
        for obj in inferedge_objects(path):
            assert server_errors(obj) == [], (path.name, obj["metadata"]["name"])


def _models(root: type[BaseModel]) -> set[type[BaseModel]]:
    """Every model class the root's schema is built from."""
    names = set(root.model_json_schema()["$defs"]) | {root.__name__}
    found: set[type[BaseModel]] = set()
    for module in ("inferedge.api.base", "inferedge.api.pipeline", "inferedge.api.pipeline_status",
                   "inferedge.api.model_spec", "inferedge.api.edge_pools",
                   "inferedge.api.plan_spec", "inferedge.api.inference_spec",
                   "inferedge.api.device_profile", "inferedge.core.exits"):  # fmt: skip
        for value in vars(importlib.import_module(module)).values():
            if isinstance(value, type) and issubclass(value, BaseModel) and value.__name__ in names:
                found.add(value)
    return found


def _after_validators(cls: type[BaseModel]) -> set[str]:
    infos = cls.__pydantic_decorators__.model_validators.values()
    funcs: list[Callable[..., Any]] = [i.func for i in infos if i.info.mode == "after"]
    return {f.__qualname__ for f in funcs}


def _mirrors(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        for rule in schema.get(CEL_KEY, []):
            if crd_schema.MIRRORS_KEY in rule:
                found.add(rule[crd_schema.MIRRORS_KEY])
        for value in schema.values():
            found |= _mirrors(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _mirrors(value)
    return found


@pytest.mark.parametrize("kind", crd_kinds.KINDS, ids=lambda k: k.kind)
def test_every_cross_field_validator_has_a_cel_rule(kind: crd_kinds.Kind) -> None:
    validators = set().union(*(_after_validators(m) for m in _models(kind.model)))
    assert validators, "expected cross-field validators to mirror"
    mirrored = _mirrors(crd_schema.structural_schema(kind.model))
    assert validators <= mirrored, f"no CEL rule mirrors {sorted(validators - mirrored)}"


def test_every_mirrored_message_is_exercised() -> None:
    schemas = [crd_schema.structural_schema(k.model) for k in crd_kinds.KINDS]
    messages = {
        rule["message"]
        for schema in schemas
        for rule in _rules(schema)
        if crd_schema.MIRRORS_KEY in rule
    }
    exercised = {message for _, _, message in BAD}
    assert messages <= exercised, f"no refused sample for {sorted(messages - exercised)}"


def _rules(schema: Any) -> list[dict[str, Any]]:
    if isinstance(schema, dict):
        return [*schema.get(CEL_KEY, []), *(r for v in schema.values() for r in _rules(v))]
    if isinstance(schema, list):
        return [r for v in schema for r in _rules(v)]
    return []


def test_every_rule_in_the_crds_compiles() -> None:
    pytest.importorskip("celpy")
    rules = [r["rule"] for k in crd_kinds.KINDS for r in _rules(load_crd_schema(k.kind))]
    assert len(rules) >= 10
    for rule in rules:
        compile_rule(rule)


def _manifests_in_docs() -> list[tuple[str, Obj]]:
    """inferedge objects in the docs' YAML blocks and shell here-documents."""
    found: list[tuple[str, Obj]] = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text()
        blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
        blocks += re.findall(r"<<'EOF'\n(.*?)\nEOF", text, flags=re.S)
        for block in blocks:
            for obj in yaml.safe_load_all(block):
                if isinstance(obj, dict) and str(obj.get("apiVersion", "")).startswith(
                    "inferedge.io/"
                ):
                    found.append((doc.name, obj))
    return found


def test_manifests_in_the_docs_are_valid() -> None:
    found = _manifests_in_docs()
    assert {where for where, _ in found} >= {"quickstart-cluster.md", "jetson.md"}
    for where, obj in found:
        assert pydantic_error(obj) is None, (where, pydantic_error(obj))
        assert server_errors(obj, cel=False) == [], where


def test_rules_hold_for_the_defaults_themselves() -> None:
    # The API server validates a CRD's defaults when the CRD is created; a rule that needs a
    # nested default to be filled in first would make the whole CRD invalid.
    pytest.importorskip("celpy")
    for kind in crd_kinds.KINDS:
        for path, node in _nodes(load_crd_schema(kind.kind), kind.kind):
            if "default" in node and node.get(CEL_KEY):
                assert cel_errors(node, node["default"]) == [], path


def _nodes(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, prop in schema.get("properties", {}).items():
        found += _nodes(prop, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _nodes(schema[key], f"{path}[]")
    return found
