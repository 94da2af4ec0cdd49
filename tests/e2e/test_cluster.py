"""On a real cluster: the installed operator takes a small pipeline to Ready, edits, deletes."""

from __future__ import annotations

import base64
from typing import Any

from tests.e2e.conftest import Kubectl, setting, wait_for

GROUP = "inferedge.io/v1alpha1"


def _secret(name: str) -> dict[str, Any]:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {
            "accessKey": b64(setting("ACCESS_KEY", "minioadmin")),
            "secretKey": b64(setting("SECRET_KEY", "minioadmin")),
        },
    }


def _objects() -> list[dict[str, Any]]:
    arch = setting("EDGE_ARCH", "amd64")
    profiling = {"batchSizes": [1], "warmup": 1, "repeats": 3}
    return [
        _secret("e2e-store"),
        {
            "apiVersion": GROUP,
            "kind": "DeviceProfile",
            "metadata": {"name": "e2e-edge"},
            "spec": {
                "role": "edge",
                "nodeSelector": {"kubernetes.io/arch": arch},
                "profiling": profiling,
                "link": {"bandwidthMbps": 20, "rttMs": 20},
            },
        },
        {
            "apiVersion": GROUP,
            "kind": "DeviceProfile",
            "metadata": {"name": "e2e-cloud"},
            "spec": {"role": "cloud", "profiling": profiling},
        },
        {
            "apiVersion": GROUP,
            "kind": "InferencePipeline",
            "metadata": {"name": "e2e-digits"},
            "spec": {
                "model": {"name": "resnet18", "inputShape": [3, 16, 16]},
                "dataset": {"name": "digits", "backboneTraining": {"epochs": 2}},
                "edge": {"profile": "e2e-edge"},
                "cloud": {"profile": "e2e-cloud"},
                "partitioning": {"strategy": "min-latency"},
                "exits": {"edge": 1, "cloud": 1, "training": {"epochs": 2}},
                "storage": {
                    "uri": setting("STORE_URI", "s3://inferedge-artifacts"),
                    "endpoint": setting("STORE_ENDPOINT", "http://inferedge-minio.inferedge:9000"),
                    "secretRef": {"name": "e2e-store"},
                },
                "messaging": {
                    "natsUrl": setting("NATS_URL", "nats://inferedge-nats.inferedge:4222")
                },
            },
        },
    ]


def _ready(kubectl: Kubectl) -> dict[str, Any] | None:
    body = kubectl.get("ipl", "e2e-digits") or {}
    status = body.get("status") or {}
    current = status.get("observedGeneration") == body.get("metadata", {}).get("generation")
    return body if current and status.get("phase") == "Ready" else None


def test_the_crds_are_served(kubectl: Kubectl) -> None:
    resources = kubectl("api-resources", "--api-group=inferedge.io", "-o", "name")
    assert "inferencepipelines.inferedge.io" in resources
    assert "deviceprofiles.inferedge.io" in resources


def test_a_pipeline_goes_ready_rolls_its_config_and_cleans_up(kubectl: Kubectl) -> None:
    timeout = float(setting("TIMEOUT_S", "1800"))
    kubectl.apply(*_objects())
    body = wait_for("e2e-digits to be Ready", lambda: _ready(kubectl), timeout)
    assert {c["type"]: c["status"] for c in body["status"]["conditions"]}["Ready"] == "True"
    kubectl("wait", "--for=condition=Ready", "ipl/e2e-digits", "--timeout=60s")
    table = kubectl("get", "ipl", "e2e-digits")
    assert "Ready" in table

    jobs = kubectl("get", "jobs", "-o", "name")
    kubectl(
        "patch",
        "ipl",
        "e2e-digits",
        "--type=merge",
        "-p",
        '{"spec": {"inference": {"threshold": 0.5}}}',
    )
    after = wait_for(
        "the threshold roll",
        lambda: (b := _ready(kubectl)) and b["status"].get("threshold") == 0.5 and b,
        timeout / 3,
    )
    assert after["status"]["plan"]["hash"] == body["status"]["plan"]["hash"]
    assert kubectl("get", "jobs", "-o", "name") == jobs  # a config roll, not a retrain

    kubectl("delete", "ipl", "e2e-digits", "--wait=true", "--timeout=300s")
    for kind in ("deployment", "service", "configmap"):
        wait_for(
            f"the pipeline's {kind}s to go",
            lambda k=kind: "e2e-digits" not in kubectl("get", k, "-o", "name"),
            300,
        )
