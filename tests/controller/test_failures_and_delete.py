"""Deleting a pipeline, bad input, and failed Jobs: clear messages, and nothing else stops."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from inferedge.storage import ArtifactStore, open_store
from tests.controller.cluster import ns_path, wait_for
from tests.controller.conftest import SPEEDS, Cluster
from tests.controller.kubelet import Kubelet
from tests.storage.conftest import make_s3_store

Operator = Callable[[], AbstractContextManager[KopfRunner]]


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh bucket on the moto S3 server."""
    bucket = f"ipl-{uuid.uuid4().hex[:12]}"
    make_s3_store(moto_endpoint, bucket).ensure_bucket()
    return bucket


@pytest.fixture
def s3_kubelet(cluster: Cluster, moto_endpoint: str, s3_bucket: str) -> Iterator[Kubelet]:
    """The kubelet stand-in writing to S3 with the credentials a Secret would give a pod."""
    env = {
        "INFEREDGE_S3_ENDPOINT": f"http://{moto_endpoint}",
        "INFEREDGE_S3_ACCESS_KEY": "testing",
        "INFEREDGE_S3_SECRET_KEY": "testing",
    }

    def store() -> ArtifactStore:
        return open_store(f"s3://{s3_bucket}", env=env)

    with Kubelet(cluster.api, store, speeds=SPEEDS) as stand_in:
        yield stand_in


def _secret(name: str) -> dict[str, object]:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"accessKey": b64("testing"), "secretKey": b64("testing")},
    }


def test_delete_removes_children_and_artifacts(
    cluster: Cluster,
    s3_kubelet: Kubelet,
    moto_endpoint: str,
    s3_bucket: str,
    run_operator: Operator,
) -> None:
    storage = {
        "uri": f"s3://{s3_bucket}",
        "endpoint": f"http://{moto_endpoint}",
        "secretRef": {"name": "minio-keys"},
    }
    cluster.apply([_secret("minio-keys"), *cluster.example(storage)])
    store = s3_kubelet.open_store()
    with run_operator():
        cluster.wait_ready()
        assert store.list("default/digits"), "the pipeline stored nothing"
        assert store.list("default/_profiles")
        cluster.api.delete(ns_path("ipl", name="digits"))
        wait_for(
            "the pipeline to be gone",
            lambda: cluster.api.get(ns_path("ipl", name="digits")) is None,
        )
    assert store.list("default/digits") == []
    assert store.list("default/_profiles"), "profiles belong to the DeviceProfiles and stay"
    for kind in ("jobs", "deployments", "services", "configmaps"):
        left = [
            o["metadata"]["name"]
            for o in cluster.api.items(ns_path(kind))
            if o["metadata"]["name"].startswith("digits-")
        ]
        assert left == [], kind
    # The pods' credentials came from the Secret, never as values.
    edge = next(
        e
        for _, key, kind, e in cluster.emulator._log
        if key[2] == "deployments" and kind == "ADDED" and e["metadata"]["name"] == "digits-edge"
    )
    env = {e["name"]: e for e in edge["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["INFEREDGE_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "minio-keys",
        "key": "secretKey",
    }
    assert "value" not in env["INFEREDGE_S3_ACCESS_KEY"]


def test_invalid_spec_fails_clearly_and_the_operator_goes_on(
    cluster: Cluster, kubelet: Kubelet, store_dir: Path, run_operator: Operator
) -> None:
    docs = cluster.example({"uri": str(store_dir)})
    bad = {
        "apiVersion": "inferedge.io/v1alpha1",
        "kind": "InferencePipeline",
        "metadata": {"name": "broken"},
        "spec": {**docs[2]["spec"], "exits": {"edge": 7}},
    }
    cluster.apply([*docs, bad])
    with run_operator():
        failed = cluster.wait_phase("broken", "Failed")
        cluster.wait_ready("digits")
        wait_for(
            "a Warning event",
            lambda: [e for e in cluster.events("broken") if e["type"] == "Warning"],
        )
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "InvalidSpec"
    assert ready["message"].startswith("spec: exits.edge: ")
    assert "not retried" in ready["message"]
    stalled = next(c for c in failed["status"]["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")  # Flux: Failed
    warning = next(e for e in cluster.events("broken") if e["type"] == "Warning")
    assert warning["reason"] == "InvalidSpec"
    assert "exits.edge" in warning["message"]
    assert not [j for j in cluster.jobs() if "broken" in j["metadata"]["name"]]


def test_missing_device_profile_waits_for_it(
    cluster: Cluster, kubelet: Kubelet, store_dir: Path, run_operator: Operator
) -> None:
    edge, cloud, pipeline = cluster.example({"uri": str(store_dir)})
    cluster.apply([cloud, pipeline])
    with run_operator():
        failed = cluster.wait_phase("digits", "Failed")
        ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "DeviceProfileNotFound"
        assert "spec.edge.profile: no DeviceProfile 'jetson-orin-nano'" in ready["message"]
        cluster.apply([edge])
        cluster.wait_ready()


def test_failed_training_is_not_retried_until_its_job_is_deleted(
    cluster: Cluster, kubelet: Kubelet, store_dir: Path, run_operator: Operator
) -> None:
    kubelet.fail.add("train")
    cluster.apply(cluster.example({"uri": str(store_dir)}))
    with run_operator():
        failed = cluster.wait_phase("digits", "Failed")
        trained = next(c for c in failed["status"]["conditions"] if c["type"] == "ExitsTrained")
        assert trained["reason"] == "TrainingFailed"
        assert "not retried: fix the spec, or delete Job digits-train-" in trained["message"]
        assert cluster.created("jobs", "-train-") == 1
        kubelet.fail.clear()
        (job,) = cluster.jobs("train")
        cluster.api.delete(ns_path("jobs", name=job["metadata"]["name"]))
        cluster.wait_ready()
    assert cluster.created("jobs", "-train-") == 2
