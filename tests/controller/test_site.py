"""A site of several edge pools through the real operator, against the emulated cluster (issue
#15): every pool's class profiled, one edge Deployment per pool, the dispatcher with its Service
and site ConfigMap, status.pools and status.distribution; a new target or a pool scaled is a new
decision that rolls the dispatcher; a bad pool reference waits, naming its field."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from inferedge.api.site import parse_site
from inferedge.controller import naming
from inferedge.storage import LocalStore
from tests.controller.cluster import ns_path, wait_for
from tests.controller.conftest import Cluster
from tests.controller.kubelet import Kubelet
from tests.controller.test_site_plan import site_documents

Operator = Callable[[], AbstractContextManager[KopfRunner]]
NAME = "collaborative"
# ms per GFLOP of the synthetic profiles: three boards of different speeds, and the cloud.
SPEEDS = {"jetson-nano": 60.0, "odroid-xu4": 120.0, "raspberry-pi4": 160.0, "cloud-cpu": 6.0}
POOLS = {"nano": "jetson-nano", "xu4": "odroid-xu4", "pi4": "raspberry-pi4"}


@pytest.fixture
def site_kubelet(cluster: Cluster, store_dir: Path) -> Iterator[Kubelet]:
    """The kubelet stand-in, knowing every board of the site."""
    with Kubelet(cluster.api, lambda: LocalStore(store_dir), speeds=SPEEDS) as stand_in:
        yield stand_in


def site_docs(store_dir: Path, **spec: Any) -> list[dict[str, Any]]:
    """The site's objects: the pipeline's store replaced, its spec updated."""
    docs = site_documents()
    for doc in docs:
        if doc["kind"] == "InferencePipeline":
            doc["spec"]["storage"] = {"uri": str(store_dir)}
            doc["spec"].update(copy.deepcopy(spec))
    return docs


def deployment(name: str) -> str:
    return ns_path("deployments", name=name)


def site_file(cluster: Cluster) -> Any:
    config_map = cluster.api.get(ns_path("configmaps", name=f"{NAME}-site"))
    return parse_site(config_map["data"]["site.json"], "site.json")


def site_hash(cluster: Cluster) -> str:
    body = cluster.api.get(deployment(f"{NAME}-dispatcher"))
    return str(body["spec"]["template"]["metadata"]["annotations"][naming.SITE_HASH])


def test_a_site_is_profiled_on_every_class_and_served_by_every_pool(
    cluster: Cluster, site_kubelet: Kubelet, store_dir: Path, run_operator: Operator
) -> None:
    docs = site_docs(store_dir)
    model = docs[-1]["spec"]["model"]
    model["versions"] = [*model["versions"], {"name": "mobilenet_v2"}]
    cluster.apply(docs)
    with run_operator():
        body = cluster.wait_ready(NAME)
        wait_for(
            "the Distributed event",
            lambda: [e for e in cluster.events(NAME) if e["reason"] == "TargetMet"],
        )

    # One profiling Job per class: the three boards and the cloud.
    profiling = cluster.jobs("profile")
    profiled = sorted(j["metadata"]["labels"][naming.DEVICE_PROFILE_LABEL] for j in profiling)
    assert profiled == sorted([*POOLS.values(), "cloud-cpu"])
    for device in POOLS.values():
        results = cluster.api.get(ns_path("dprof", name=device))["status"]["results"]
        assert [r["model"].split("@")[0] for r in results] == ["resnet18"]
    uid = body["metadata"]["uid"]
    edges = _check_edges(cluster, uid)
    site = _check_site(cluster, uid, edges)
    _check_status(body["status"], site)


def _check_edges(cluster: Cluster, uid: str) -> dict[str, Any]:
    """One edge Deployment per pool, on its class's nodes, with its replicas."""
    edges = {}
    for pool, device in POOLS.items():
        edge = cluster.api.get(deployment(f"{NAME}-edge-{pool}"))
        assert edge is not None, pool
        edges[pool] = edge
        pod = edge["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"kubernetes.io/arch": "arm64", "inferedge.io/device": device}
        assert edge["spec"]["replicas"] == 1
        assert edge["metadata"]["labels"][naming.POOL_LABEL] == pool
        assert edge["metadata"]["ownerReferences"][0]["uid"] == uid
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["containers"][0]["env"]}
        assert env["INFEREDGE_POOL"] == pool
        assert env["INFEREDGE_REPLICA"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert cluster.api.get(deployment(f"{NAME}-edge")) is None  # no single-form Deployment
    return edges


def _check_site(cluster: Cluster, uid: str, edges: dict[str, Any]) -> Any:
    """The site: its file, the dispatcher and its Service, all owned by the pipeline."""
    for kind, name in [
        ("deployments", f"{NAME}-dispatcher"),
        ("services", f"{NAME}-dispatcher"),
        ("configmaps", f"{NAME}-site"),
        ("deployments", f"{NAME}-cloud"),
    ]:
        child = cluster.api.get(ns_path(kind, name=name))
        assert child is not None, name
        assert child["metadata"]["ownerReferences"][0]["uid"] == uid
    site = site_file(cluster)
    assert (site.namespace, site.pipeline, site.target_rate) == ("default", NAME, 60)
    assert [p.name for p in site.pools] == list(POOLS)
    for pool in site.pools:  # a truncated version is served by answering at its exit
        container = edges[pool.name]["spec"]["template"]["spec"]["containers"][0]
        exit_at = {e["name"]: e.get("value") for e in container["env"]}.get(
            "INFEREDGE_ANSWER_AT_EXIT"
        )
        assert exit_at == (pool.version[-1] if "-exit" in pool.version else None)
    service = cluster.api.get(ns_path("services", name=f"{NAME}-dispatcher"))
    assert service["spec"]["ports"][0]["port"] == 8080
    return site


def _check_status(status: dict[str, Any], site: Any) -> None:
    """Each pool's part, and the distribution with why it was decided."""
    pools = {p["name"]: p for p in status["pools"]}
    assert list(pools) == list(POOLS)
    for pool in site.pools:
        shown = pools[pool.name]
        assert (shown["profile"], shown["version"]) == (POOLS[pool.name], pool.version)
        assert (shown["replicas"], shown["readyReplicas"]) == (1, 1)
    assert sum(p["share"] for p in pools.values()) == pytest.approx(1.0)
    assert sum(p["assignedRate"] for p in pools.values()) == pytest.approx(60)
    distribution = status["distribution"]
    assert distribution["targetRate"] == 60
    assert distribution["plannedRate"] == pytest.approx(60)
    assert distribution["met"] is True
    assert distribution["cause"] == "start"
    assert distribution["decidedAt"].endswith("Z")
    assert 0.9 <= distribution["accuracy"] <= 1.0
    conditions = {c["type"]: c for c in status["conditions"]}
    distributed = conditions["Distributed"]
    assert (distributed["status"], distributed["reason"]) == ("True", "TargetMet")
    assert (
        "versions left out: mobilenet_v2 (another model needs its own training"
        in (distributed["message"])
    )
    assert conditions["Ready"]["status"] == "True"
    assert status["edge"]["replicas"] == 3  # the pools' pods; the dispatcher is its own


def test_a_new_target_or_a_scaled_pool_is_a_new_decision_that_rolls_the_dispatcher(
    cluster: Cluster, site_kubelet: Kubelet, store_dir: Path, run_operator: Operator
) -> None:
    cluster.apply(site_docs(store_dir))
    path = ns_path("ipl", name=NAME)
    with run_operator():
        cluster.wait_ready(NAME)
        first = site_hash(cluster)
        jobs = sorted(j["metadata"]["name"] for j in cluster.jobs())
        cluster.api.merge(path, {"spec": {"distribution": {"targetRate": 200}}})
        body = cluster.wait_ready(NAME)
        assert site_file(cluster).target_rate == 200
        second = site_hash(cluster)
        assert second != first
        distribution = body["status"]["distribution"]
        assert distribution["cause"] == "target changed: 60 -> 200 requests/s"
        # A faster target is served with lighter versions somewhere.
        assert any("-exit" in p["version"] for p in body["status"]["pools"])

        pools = copy.deepcopy(body["spec"]["edge"]["pools"])
        pools[1]["replicas"] = 3
        cluster.api.merge(path, {"spec": {"edge": {"pools": pools}}})
        body = cluster.wait_ready(NAME)
        assert body["status"]["distribution"]["cause"] == "pool xu4: 1 -> 3 replicas"
        assert cluster.api.get(deployment(f"{NAME}-edge-xu4"))["spec"]["replicas"] == 3
        assert {p.name: p.replicas for p in site_file(cluster).pools}["xu4"] == 3
        assert site_hash(cluster) != second
        xu4 = next(p for p in body["status"]["pools"] if p["name"] == "xu4")
        assert (xu4["replicas"], xu4["readyReplicas"]) == (3, 3)
        # Nothing was trained again: a new decision is a config roll.
        assert sorted(j["metadata"]["name"] for j in cluster.jobs()) == jobs

        # Without spec.distribution the site's children go once the pipeline is Ready again.
        cluster.api.merge(path, {"spec": {"distribution": None}})
        body = cluster.wait_ready(NAME)
        wait_for(
            "the dispatcher to go",
            lambda: cluster.api.get(deployment(f"{NAME}-dispatcher")) is None,
        )
        wait_for(
            "the site's Service and ConfigMap to go",
            lambda: (
                cluster.api.get(ns_path("services", name=f"{NAME}-dispatcher")) is None
                and cluster.api.get(ns_path("configmaps", name=f"{NAME}-site")) is None
            ),
        )
    status = body["status"]
    assert "distribution" not in status
    assert status.get("pools", []) == []
    assert "Distributed" not in {c["type"] for c in status["conditions"]}
    edge = cluster.api.get(deployment(f"{NAME}-edge-nano"))["spec"]["template"]["spec"]
    assert "INFEREDGE_POOL" not in {e["name"] for e in edge["containers"][0]["env"]}


@pytest.mark.parametrize(
    "case",
    [
        (
            "odroid-missing",
            "DeviceProfileNotFound",
            "spec.edge.pools[1].profile: no DeviceProfile 'odroid-missing' in namespace 'default'",
        ),
        (
            "cloud-gpu",
            "DeviceProfileRoleMismatch",
            "spec.edge.pools[1].profile: DeviceProfile 'cloud-gpu' has role 'cloud', "
            "expected 'edge'",
        ),
    ],
    ids=["missing", "cloud-role"],
)
def test_a_bad_pool_reference_waits_naming_its_field(
    cluster: Cluster,
    site_kubelet: Kubelet,
    store_dir: Path,
    run_operator: Operator,
    case: tuple[str, str, str],
) -> None:
    profile, reason, message = case
    docs = site_docs(store_dir)
    docs[-1]["spec"]["edge"]["pools"][1]["profile"] = profile
    gpu = {"apiVersion": "inferedge.io/v1alpha1", "kind": "DeviceProfile",
           "metadata": {"name": "cloud-gpu"}, "spec": {"role": "cloud"}}  # fmt: skip
    cluster.apply([gpu, *docs])
    with run_operator():
        wait_for(
            "the pipeline to wait on its pool",
            lambda: (cluster.condition(NAME, "Ready") or {}).get("reason") == reason,
        )
    condition = cluster.condition(NAME, "Ready")
    assert condition is not None
    assert condition["message"].startswith(message)
    assert "\n" not in condition["message"]
    assert cluster.pipeline(NAME)["status"]["phase"] == "Failed"
    # Nothing is profiled on the bad reference, and nothing serves.
    labels = [j["metadata"]["labels"][naming.DEVICE_PROFILE_LABEL] for j in cluster.jobs()]
    assert profile not in labels
    assert cluster.api.items(ns_path("deployments")) == []


def test_pools_without_a_distribution_serve_alone_and_a_removed_pool_goes(
    cluster: Cluster, site_kubelet: Kubelet, store_dir: Path, run_operator: Operator
) -> None:
    cluster.apply(site_docs(store_dir, distribution=None))
    path = ns_path("ipl", name=NAME)
    with run_operator():
        body = cluster.wait_ready(NAME)
        names = {d["metadata"]["name"] for d in cluster.api.items(ns_path("deployments"))}
        assert names == {f"{NAME}-edge-{p}" for p in POOLS} | {f"{NAME}-cloud"}
        assert cluster.api.get(ns_path("configmaps", name=f"{NAME}-site")) is None
        assert len(cluster.jobs("profile")) == 4  # still profiled on every class
        pools = copy.deepcopy(body["spec"]["edge"]["pools"])[:2]
        cluster.api.merge(path, {"spec": {"edge": {"pools": pools}}})
        body = cluster.wait_ready(NAME)
        wait_for(
            "the removed pool's Deployment to go",
            lambda: cluster.api.get(deployment(f"{NAME}-edge-pi4")) is None,
        )
    status = body["status"]
    assert "distribution" not in status
    assert "Distributed" not in {c["type"] for c in status["conditions"]}
    assert status["edge"]["replicas"] == 2
    assert cluster.api.get(deployment(f"{NAME}-edge-xu4")) is not None
