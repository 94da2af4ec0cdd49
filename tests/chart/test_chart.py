"""The Helm chart: lint, schema, rendered objects valid for Kubernetes 1.37, least privilege."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.chart.helpers import (
    CHART,
    NAMESPACE,
    ROOT,
    Manifest,
    chart,
    find,
    one,
    operator_args,
    render,
    render_files,
)

NATS_AUTH = "inferedge-nats-auth"  # the ConfigMap with the NATS users (test_nats_auth.py)
# Kinds kubernetes-validate has no schema for; each is checked by hand below.
CUSTOM_KINDS = {"ServiceMonitor", "PodMonitor", "ClusterKopfPeering", "KopfPeering"}
COMBINATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"rbac": {"scope": "namespace", "watchNamespaces": ["team-a", "team-b"]}},
    "peering": {"peering": {"enabled": True}, "replicaCount": 2},
    "namespaced-peering": {"rbac": {"scope": "namespace"}, "peering": {"enabled": True}},
    "monitoring": {
        "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
        "grafana": {"dashboard": {"enabled": True}},
    },
    "crd-upgrade-job": {"crds": {"upgradeJob": {"enabled": True}}},
    "no-nats-auth": {"natsAuth": {"enabled": False}},
    "own-nats-secrets": {"natsAuth": {"createSecrets": False}},
    "nats-pipeline-namespaces": {"natsAuth": {"pipelineNamespaces": ["team-a", "default"]}},
    "everything": {
        "peering": {"enabled": True},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        "grafana": {"dashboard": {"enabled": True, "namespace": "monitoring"}},
        "crds": {"upgradeJob": {"enabled": True}},
        "imagePullSecrets": ["regcred"],
        "operator": {"env": [{"name": "INFEREDGE_LOG", "value": "debug"}], "verbose": True},
        "nodeSelector": {"kubernetes.io/arch": "amd64"},
        "podAnnotations": {"a": "b"},
        "priorityClassName": "system-cluster-critical",
    },
}
# (group, resource, verb) the operator needs and nothing more (docs/install.md explains each).
NAMESPACED_RULES = {
    *{("inferedge.io", r, v) for r in ("inferencepipelines", "deviceprofiles")
      for v in ("get", "list", "watch", "patch")},
    *{("inferedge.io", f"{r}/status", v) for r in ("inferencepipelines", "deviceprofiles")
      for v in ("get", "patch", "update")},
    *{("inferedge.io", f"{r}/finalizers", v) for r in ("inferencepipelines", "deviceprofiles")
      for v in ("update", "patch")},
    *{("batch", "jobs", v) for v in ("create", "get", "list", "watch", "patch", "delete")},
    # The controller replaces changed children with PUT.
    *{(g, r, v) for g, r in (("apps", "deployments"), ("", "services"), ("", "configmaps"))
      for v in ("create", "get", "list", "watch", "patch", "update", "delete")},
    *{("", "pods", v) for v in ("get", "list", "watch")},
    *{("", "events", v) for v in ("create", "patch")},
    ("", "secrets", "get"),
}  # fmt: skip
CRD_READ = {
    ("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")
}


def triples(role: Manifest) -> set[tuple[str, str, str]]:
    out = set()
    for rule in role["rules"]:
        assert "resourceNames" not in rule or rule["resourceNames"]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), rule
                    out.add((group, resource, verb))
    return out


@pytest.mark.parametrize("values", COMBINATIONS.values(), ids=list(COMBINATIONS))
def test_lint_strict_has_no_warnings(values: dict[str, Any]) -> None:
    report = helm.lint(CHART, values, strict=True, kube_version="v1.30.0", namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == []
    assert problems == [], problems


@pytest.mark.parametrize("values", COMBINATIONS.values(), ids=list(COMBINATIONS))
def test_every_rendered_object_is_valid(values: dict[str, Any]) -> None:
    objects = render(values)
    assert objects
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(obj, "1.37.0", strict=True)
    names = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names)), "two objects share a kind, namespace and name"


def test_defaults_render_operator_rbac_nats_identities_and_nothing_optional() -> None:
    objects = render()
    assert {o["kind"] for o in objects} == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment",
        "ConfigMap", "Secret",  # NATS identities (tests/chart/test_nats_auth.py)
    }  # fmt: skip
    assert operator_args(objects) == [
        "operator", "--all-namespaces", "--standalone", "--liveness", "http://0.0.0.0:8080/healthz",
        "--runtime-image", "ghcr.io/inferedge/runtime:0.1.0",
        "--edge-image", "ghcr.io/inferedge/runtime-jetson:0.1.0",
        "--runtime-image-tensorflow", "ghcr.io/inferedge/runtime-tensorflow:0.1.0",
        "--edge-image-tensorflow", "ghcr.io/inferedge/runtime-tensorflow:0.1.0",
        "--image-pull-policy", "IfNotPresent", "--tuning-interval", "30",
        "--clock-agent-dir", "/run/inferedge",
    ]  # fmt: skip
    role = one(objects, "ClusterRole")
    assert triples(role) == NAMESPACED_RULES | CRD_READ | {
        ("kopf.dev", "clusterkopfpeerings", v) for v in ("get", "list", "watch", "patch")
    }
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (subject,) = binding["subjects"]
    assert subject == {
        "kind": "ServiceAccount",
        "name": one(objects, "ServiceAccount")["metadata"]["name"],
        "namespace": NAMESPACE,
    }


def test_operator_pod_is_locked_down_and_probed() -> None:
    deployment = one(render({"operator": {"healthPort": 9090}}), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]
    (port,) = container["ports"]
    assert port["containerPort"] == 9090
    assert "http://0.0.0.0:9090/healthz" in container["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_namespaced_scope_grants_roles_only_where_it_watches() -> None:
    objects = render(COMBINATIONS["namespaced"])
    roles = find(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert triples(role) == NAMESPACED_RULES | {
            ("kopf.dev", "kopfpeerings", v) for v in ("get", "list", "watch", "patch")
        }
    bindings = find(objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    (cluster_role,) = find(objects, "ClusterRole")
    assert triples(cluster_role) == CRD_READ, "a namespaced operator reads only CRDs cluster-wide"
    args = operator_args(objects)
    assert "--all-namespaces" not in args
    assert args[1:5] == ["--namespace", "team-a", "--namespace", "team-b"]


def test_namespaced_scope_defaults_to_the_release_namespace() -> None:
    objects = render({"rbac": {"scope": "namespace"}})
    assert [r["metadata"]["namespace"] for r in find(objects, "Role")] == [NAMESPACE]


def test_peering_installs_its_crds_and_object() -> None:
    objects = render(COMBINATIONS["peering"])
    crds = {c["metadata"]["name"] for c in find(objects, "CustomResourceDefinition")}
    assert crds == {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
    peering = one(objects, "ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert peering["metadata"]["name"] == "inferedge"
    assert "post-install" in peering["metadata"]["annotations"]["helm.sh/hook"]
    args = operator_args(objects)
    assert args[args.index("--peering") + 1] == "inferedge"
    assert "--standalone" not in args
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    namespaced = render(COMBINATIONS["namespaced-peering"])
    (kopf_peering,) = find(namespaced, "KopfPeering")
    assert kopf_peering["metadata"]["namespace"] == NAMESPACE
    no_crds = render({"peering": {"enabled": True, "createCRDs": False}})
    assert not find(no_crds, "CustomResourceDefinition")


def test_monitors_select_the_pipeline_pods_the_operator_labels() -> None:
    objects = render(COMBINATIONS["monitoring"])
    for kind, endpoints in (("ServiceMonitor", "endpoints"), ("PodMonitor", "podMetricsEndpoints")):
        monitor = one(objects, kind)
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        spec = monitor["spec"]
        assert spec["namespaceSelector"] == {"any": True}
        assert spec["selector"]["matchLabels"] == {
            "app.kubernetes.io/name": "inferedge",
            "app.kubernetes.io/managed-by": "inferedge-operator",
        }
        assert spec["podTargetLabels"] == ["inferedge.io/pipeline"]
        (endpoint,) = spec[endpoints]
        assert (endpoint["path"], endpoint["port"]) == ("/metrics", "http")
    # The labels must be the ones the operator puts on what it makes.
    naming = pytest.importorskip("inferedge.controller.naming")
    for component in ("edge", "cloud"):
        labels = naming.pipeline_labels("digits", component)
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        assert labels["app.kubernetes.io/component"] == component
        assert labels[spec["podTargetLabels"][0]] == "digits"


def _metric_names() -> set[str]:
    """Series names the runtime exports (prometheus_client adds the suffixes)."""
    source = (ROOT / "operator" / "inferedge" / "runtime" / "metrics.py").read_text()
    names: set[str] = set()
    for kind, name in re.findall(r"(Counter|Histogram|Gauge)\(\s*\"(\w+)\"", source):
        suffixes = {"Counter": ("_total",), "Histogram": ("_bucket", "_sum", "_count"),
                    "Gauge": ("",)}[kind]  # fmt: skip
        names |= {name + s for s in suffixes}
    return names


def test_dashboard_uses_only_series_the_runtime_exports() -> None:
    objects = render(COMBINATIONS["monitoring"])
    (config,) = [c for c in find(objects, "ConfigMap") if c["metadata"]["name"] != NATS_AUTH]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["inferedge.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    # Series names stand before `{` or `[`; labels such as inferedge_io_pipeline do not.
    used = {m for e in exprs for m in re.findall(r"\b(inferedge_\w+)\s*[{[]", e)}
    exported = _metric_names()
    assert used <= exported, f"not exported by the runtime: {sorted(used - exported)}"
    for needed in ("inferedge_requests_total", "inferedge_offload_ratio",
                   "inferedge_activation_bytes_bucket", "inferedge_degraded_total",
                   "inferedge_latency_seconds_bucket", "inferedge_tuning_cost",
                   "inferedge_tuning_knob", "inferedge_link_bandwidth_mbps"):  # fmt: skip
        assert needed in used, needed
    assert any("by (location, exit)" in e for e in exprs)


def test_crd_upgrade_hook_applies_exactly_the_chart_crds() -> None:
    objects = render(COMBINATIONS["crd-upgrade-job"])
    job = one(objects, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["apply", "--server-side"]
    (config,) = [c for c in find(objects, "ConfigMap") if c["metadata"]["name"] != NATS_AUTH]
    shipped = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    assert {k: v + "\n" for k, v in config["data"].items()} == shipped
    role = find(objects, "ClusterRole", f"{job['metadata']['name']}")[0]
    assert {r for _, r, _ in triples(role)} == {"customresourcedefinitions"}


def test_chart_crds_are_the_generated_ones() -> None:
    shipped = sorted(c["name"] for c in chart().crds)
    assert shipped == sorted(f"crds/{p.name}" for p in (ROOT / "crds").glob("*.yaml"))


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"rbac": {"scope": "everywhere"}}, "/rbac/scope"),
        ({"operator": {"healthport": 8080}}, "healthport"),
        ({"operator": {"healthPort": 80}}, "/operator/healthPort"),
        ({"operator": {"tuningInterval": 0}}, "/operator/tuningInterval"),
        ({"image": {"repository": "x", "tag": 3}}, "/image/tag"),
        ({"replicas": 2}, "replicas"),
        (
            {"metrics": {"serviceMonitor": {"interval": "often"}}},
            "/metrics/serviceMonitor/interval",
        ),
        ({"rbac": {"watchNamespaces": ["Not_A_Namespace"]}}, "/rbac/watchNamespaces/0"),
        (
            {"operator": {"resources": {"limits": {"memory": "lots"}}}},
            "/operator/resources/limits/memory",
        ),
    ],
)
def test_schema_rejects_bad_values_naming_the_field(values: dict[str, Any], fragment: str) -> None:
    with pytest.raises(helm.HelmValuesError) as err:
        render_files(values)
    assert fragment in str(err.value)


def test_schema_is_strict_everywhere() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, path
            for name, sub in node["properties"].items():
                assert sub.get("description") or path == "", f"{path}.{name} has no description"
                walk(sub, f"{path}.{name}")

    walk(schema, "")
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    chart().validate_schema(defaults)


def test_more_replicas_without_peering_is_refused_with_a_reason() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"replicaCount > 1 needs peering\.enabled"):
        render_files({"replicaCount": 2})


def test_notes_tell_how_to_upgrade_crds() -> None:
    notes = render_files()[f"{chart().name}/templates/NOTES.txt"]
    assert "kubectl apply --server-side -f charts/inferedge/crds/" in notes
    assert "kubectl wait ipl/digits --for=condition=Ready" in notes


def test_chart_needs_no_dependency_to_install() -> None:
    assert "dependencies" not in chart().metadata
    stack = yaml.safe_load((ROOT / "charts" / "inferedge-stack" / "Chart.yaml").read_text())
    deps = {d["name"]: d for d in stack["dependencies"]}
    assert deps["inferedge"]["repository"] == "file://../inferedge"
    assert deps["inferedge"]["version"] == chart().version
    assert deps["nats"]["condition"] == "nats.enabled"
    assert deps["minio"]["condition"] == "minio.enabled"


def test_install_doc_lists_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    text = (ROOT / "docs" / "install.md").read_text()
    # Maps of Kubernetes fields (resources) are documented as one row.
    whole = {"operator.resources", "crds.upgradeJob.resources"}

    def leaves(node: dict[str, Any], path: str) -> list[str]:
        if "properties" not in node or path in whole:
            return [path]
        return [
            leaf
            for name, sub in node["properties"].items()
            if name != "global"
            for leaf in leaves(sub, f"{path}.{name}" if path else name)
        ]

    missing = [leaf for leaf in leaves(schema, "") if f"| `{leaf}` |" not in text]
    assert not missing, f"docs/install.md has no row for {missing}"
