"""The emulator's fix-ups over stock kmock 0.8, each checked directly over HTTP."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from tests.controller.cluster import ApiError, ns_path
from tests.controller.conftest import Cluster


def _configmap(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"a": "1"},
    }


def test_metadata_generation_and_optimistic_concurrency(cluster: Cluster) -> None:
    api = cluster.api
    created = api.create(ns_path("configmaps"), _configmap("one"))
    meta = created["metadata"]
    assert (meta["namespace"], meta["generation"]) == ("default", 1)
    assert meta["uid"]
    assert meta["creationTimestamp"]
    path = ns_path("configmaps", name="one")
    labelled = api.merge(path, {"metadata": {"labels": {"x": "y"}}})
    assert labelled["metadata"]["generation"] == 1  # metadata is not spec
    changed = api.merge(path, {"data": {"a": "2"}})
    assert changed["metadata"]["generation"] == 2
    assert int(changed["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    with pytest.raises(ApiError) as conflict:
        api.create(ns_path("configmaps"), _configmap("one"))
    assert conflict.value.status == 409
    stale = {**changed, "metadata": {**changed["metadata"], "resourceVersion": "1"}}
    with pytest.raises(ApiError) as lost_update:
        api.call("PUT", path, stale)
    assert lost_update.value.status == 409
    test_op = [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"}]
    with pytest.raises(ApiError) as failed_test:
        api.call("PATCH", path, test_op, "application/json-patch+json")
    assert failed_test.value.status == 422


def test_the_status_subresource_is_enforced(cluster: Cluster) -> None:
    api = cluster.api
    path = ns_path("jobs", name="j")
    api.create(
        ns_path("jobs"),
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {"x": 1},
            "status": {"succeeded": 9},
        },
    )
    assert "status" not in api.get(path)
    api.merge(path, {"status": {"succeeded": 1}})
    assert "status" not in api.get(path)
    api.merge(path + "/status", {"status": {"succeeded": 1}, "spec": {"x": 2}})
    job = api.get(path)
    assert (job["status"], job["spec"]) == ({"succeeded": 1}, {"x": 1})


def test_finalizers_and_garbage_collection(cluster: Cluster) -> None:
    api = cluster.api
    owner = api.create(
        ns_path("configmaps"),
        {**_configmap("owner"), "metadata": {"name": "owner", "finalizers": ["f"]}},
    )
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    api.create(
        ns_path("configmaps"),
        {**_configmap("child"), "metadata": {"name": "child", "ownerReferences": [ref]}},
    )
    api.delete(ns_path("configmaps", name="owner"))
    assert api.get(ns_path("configmaps", name="owner"))["metadata"]["deletionTimestamp"]
    api.merge(ns_path("configmaps", name="owner"), {"metadata": {"finalizers": None}})
    assert api.get(ns_path("configmaps", name="owner")) is None
    assert api.get(ns_path("configmaps", name="child")) is None


def test_lists_select_and_watches_resume(cluster: Cluster) -> None:
    api = cluster.api
    first = api.create(ns_path("configmaps"), _configmap("a", team="x"))
    api.create(ns_path("configmaps"), _configmap("b", team="y"))
    listed = api.call("GET", ns_path("configmaps") + "?labelSelector=team%3Dx")
    assert (listed["kind"], listed["apiVersion"]) == ("ConfigMapList", "v1")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a"]
    by_name = api.call("GET", ns_path("configmaps") + "?fieldSelector=metadata.name%3Db")
    assert [i["metadata"]["name"] for i in by_name["items"]] == ["b"]
    # A watch from a resourceVersion replays only what came after it, then times out.
    since = first["metadata"]["resourceVersion"]
    url = (
        f"{cluster.url}{ns_path('configmaps')}?watch=true&resourceVersion={since}&timeoutSeconds=1"
    )
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        events = [json.loads(line) for line in response.read().splitlines() if line]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "b")]
    initial = (
        f"{cluster.url}{ns_path('configmaps')}?watch=true&sendInitialEvents=true&timeoutSeconds=1"
    )
    with urllib.request.urlopen(initial, timeout=10) as response:
        kinds = [json.loads(line)["type"] for line in response.read().splitlines() if line]
    assert kinds == ["ADDED", "ADDED", "BOOKMARK"]


def test_crds_register_for_discovery_and_tables(cluster: Cluster) -> None:
    resources = cluster.api.call("GET", "/apis/inferedge.io/v1alpha1")["resources"]
    pipelines = next(r for r in resources if r["name"] == "inferencepipelines")
    assert (pipelines["kind"], pipelines["shortNames"]) == ("InferencePipeline", ["ipl"])
    assert cluster.api.call("GET", "/api/v1")["groupVersion"] == "v1"
    request = urllib.request.Request(
        cluster.url + ns_path("ipl"),
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        table = json.loads(response.read())
    assert [c["name"] for c in table["columnDefinitions"]][:3] == ["Name", "Phase", "Split"]
