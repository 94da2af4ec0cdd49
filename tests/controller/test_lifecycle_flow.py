"""The operator end to end against the emulated cluster: create, edit, fail, recover."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from kopf.testing import KopfRunner

from inferedge.storage import LocalStore
from tests.controller.cluster import ns_path, wait_for
from tests.controller.conftest import Cluster
from tests.controller.kubelet import CALIBRATED_OFFLOAD, CALIBRATED_THRESHOLD, Kubelet

Operator = Callable[[], AbstractContextManager[KopfRunner]]
PHASE_ORDER = ["Profiling", "Planning", "Training", "Exporting", "Deploying", "Ready"]


def test_create_to_ready(
    cluster: Cluster, kubelet: Kubelet, store_dir: Path, run_operator: Operator
) -> None:
    cluster.apply(cluster.example({"uri": str(store_dir)}))
    with run_operator():
        body = cluster.wait_ready()
        # Events are posted in the background: wait for the last one before stopping.
        wait_for(
            "the Ready event",
            lambda: [e for e in cluster.events("digits") if e["reason"] == "Ready"],
        )
    status = body["status"]
    assert body["metadata"]["finalizers"] == ["inferedge.io/finalizer"]
    annotations = body["metadata"].get("annotations", {})
    # kopf's bookkeeping lives under inferedge.io/, not kopf.zalando.org/
    assert all(k.startswith("inferedge.io/") for k in annotations if "kopf" in k), annotations
    assert "kopf" not in status
    assert status["threshold"] == CALIBRATED_THRESHOLD
    assert status["offloadRatio"] == CALIBRATED_OFFLOAD
    plan = status["plan"]
    assert plan["exits"] == f"{len(plan['edgeExits'])}+{len(plan['cloudExits'])}"
    plan_dir, set_id = status["artifacts"]["uri"].rsplit("/", 1)
    assert plan_dir.endswith(f"default/digits/{plan['hash']}")
    assert len(set_id) == 16
    conditions = {c["type"]: c for c in status["conditions"]}
    assert {k: c["status"] for k, c in conditions.items()} == dict.fromkeys(
        [
            "Profiled",
            "Planned",
            "ExitsTrained",
            "ArtifactsStored",
            "EdgeReady",
            "CloudReady",
            "Ready",
        ],
        "True",
    ) | {"Stalled": "False"}
    assert all(
        c["observedGeneration"] == body["metadata"]["generation"] for c in conditions.values()
    )

    # Every phase was announced with an Event, in order.
    reasons = [e["reason"] for e in cluster.events("digits")]
    assert [r for r in reasons if r in PHASE_ORDER] == PHASE_ORDER

    # Children: two profiles, one training and one export Job, edge + cloud, config, service.
    assert len(cluster.jobs("profile")) == 2
    assert len(cluster.jobs("train")) == 1
    assert len(cluster.jobs("export")) == 1
    uid = body["metadata"]["uid"]
    for kind, name in [
        ("deployments", "digits-edge"),
        ("deployments", "digits-cloud"),
        ("services", "digits-cloud"),
        ("configmaps", "digits-runtime"),
    ]:
        child = cluster.api.get(ns_path(kind, name=name))
        assert child is not None, name
        assert child["metadata"]["ownerReferences"][0]["uid"] == uid

    # The DeviceProfiles record where their profiles are and where the Job ran.
    profile = cluster.api.get(ns_path("dprof", name="jetson-orin-nano"))
    (result,) = profile["status"]["results"]
    assert result["model"].startswith("resnet18@")
    assert LocalStore(store_dir).exists(result["uri"].removeprefix(f"{store_dir}/"))
    assert profile["status"]["node"].startswith("node-of-jetson-orin-nano-profile-")
    assert profile["metadata"].get("finalizers") is None  # nothing outside the cluster to clean


def test_threshold_edit_only_rolls_the_config(
    cluster: Cluster, kubelet: Kubelet, store_dir: Path, run_operator: Operator
) -> None:
    cluster.apply(cluster.example({"uri": str(store_dir)}))
    with run_operator():
        before = cluster.wait_ready()
        edge_before = cluster.api.get(ns_path("deployments", name="digits-edge"))
        jobs_before = sorted(j["metadata"]["name"] for j in cluster.jobs())
        cluster.api.merge(
            ns_path("ipl", name="digits"), {"spec": {"inference": {"threshold": 0.6}}}
        )
        after = cluster.wait_ready()
    assert after["status"]["threshold"] == 0.6
    assert after["status"]["plan"]["hash"] == before["status"]["plan"]["hash"]
    config = cluster.api.get(ns_path("configmaps", name="digits-runtime"))
    assert config["data"]["INFEREDGE_SERVE_THRESHOLD"] == "0.6"
    edge = cluster.api.get(ns_path("deployments", name="digits-edge"))
    key = "inferedge.io/config-hash"
    old_hash = edge_before["spec"]["template"]["metadata"]["annotations"][key]
    assert edge["spec"]["template"]["metadata"]["annotations"][key] != old_hash
    assert sorted(j["metadata"]["name"] for j in cluster.jobs()) == jobs_before
    assert cluster.created("jobs", "-train-") == 1


def test_model_edit_plans_and_trains_again(
    cluster: Cluster, kubelet: Kubelet, store_dir: Path, run_operator: Operator
) -> None:
    cluster.apply(cluster.example({"uri": str(store_dir)}))
    with run_operator():
        before = cluster.wait_ready()
        old_train = cluster.jobs("train")[0]["metadata"]["name"]
        cluster.api.merge(ns_path("ipl", name="digits"), {"spec": {"model": {"name": "vgg11"}}})
        after = cluster.wait_ready()
        # The superseded run's Jobs are pruned once the new plan serves.
        wait_for(
            "the old training Job to go",
            lambda: cluster.api.get(ns_path("jobs", name=old_train)) is None,
        )
    assert after["status"]["plan"]["hash"] != before["status"]["plan"]["hash"]
    assert cluster.created("jobs", "-train-") == 2
    assert cluster.created("jobs", "-profile-") == 4
    results = cluster.api.get(ns_path("dprof", name="cloud-cpu"))["status"]["results"]
    assert [r["model"].split("@")[0] for r in results] == ["vgg11"]
