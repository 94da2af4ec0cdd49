"""What a user does with kubectl: apply the CRDs and the example, get, wait for Ready."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import yaml
from kopf.testing import KopfRunner

from inferedge.storage import ArtifactStore, open_store
from tests.controller.conftest import EXAMPLE, SPEEDS, Cluster
from tests.controller.crds import CRD_DIR, crd_files, load_crds
from tests.controller.kubelet import Kubelet
from tests.storage.conftest import make_s3_store

Operator = Callable[[], AbstractContextManager[KopfRunner]]
KUBECTL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "kubectl"


def kubectl(cluster: Cluster, tmp: Path, *args: str, timeout: float = 90) -> str:
    """Run kubectl against the emulator; fail with its stderr."""
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "HOME": str(tmp)}
    result = subprocess.run(
        [str(KUBECTL), "--cache-dir", str(tmp / "kube-cache"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def test_kubectl_apply_get_and_wait(
    bare_cluster: Cluster, moto_endpoint: str, tmp_path: Path, run_operator: Operator
) -> None:
    cluster = bare_cluster
    if crd_files():
        kubectl(cluster, tmp_path, "apply", "--validate=false", "-f", str(CRD_DIR))
    else:
        crds = tmp_path / "crds.yaml"
        crds.write_text(yaml.safe_dump_all(load_crds()))
        kubectl(cluster, tmp_path, "apply", "--validate=false", "-f", str(crds))

    # The example as shipped, but its MinIO endpoint is the test's S3 server.
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    storage = next(d for d in docs if d["kind"] == "InferencePipeline")["spec"]["storage"]
    storage["endpoint"] = f"http://{moto_endpoint}"
    bucket = storage["uri"].removeprefix("s3://")
    s3 = make_s3_store(moto_endpoint, bucket)
    s3.ensure_bucket()
    s3.delete_prefix("default")
    example = tmp_path / "digits-pipeline.yaml"
    example.write_text(yaml.safe_dump_all(docs))
    secret = storage["secretRef"]["name"]
    manifest = kubectl(
        cluster,
        tmp_path,
        "create",
        "secret",
        "generic",
        secret,
        "--dry-run=client",
        "-o=yaml",
        "--from-literal=accessKey=testing",
        "--from-literal=secretKey=testing",
    )
    (tmp_path / "secret.yaml").write_text(manifest)
    kubectl(cluster, tmp_path, "apply", "--validate=false", "-f", str(tmp_path / "secret.yaml"))
    applied = kubectl(cluster, tmp_path, "apply", "--validate=false", "-f", str(example))
    assert "inferencepipeline.inferedge.io/digits created" in applied

    env = {
        "INFEREDGE_S3_ENDPOINT": f"http://{moto_endpoint}",
        "INFEREDGE_S3_ACCESS_KEY": "testing",
        "INFEREDGE_S3_SECRET_KEY": "testing",
    }

    def store() -> ArtifactStore:
        return open_store(f"s3://{bucket}", env=env)

    with Kubelet(cluster.api, store, speeds=SPEEDS), run_operator():
        kubectl(cluster, tmp_path, "wait", "--for=condition=Ready", "ipl/digits", "--timeout=60s")
        table = kubectl(cluster, tmp_path, "get", "ipl")
        phase = kubectl(cluster, tmp_path, "get", "ipl", "digits", "-o", "jsonpath={.status.phase}")
        profiles = kubectl(cluster, tmp_path, "get", "dprof")
    header, row = table.strip().splitlines()
    assert header.split() == [
        "NAME",
        "PHASE",
        "SPLIT",
        "EXITS",
        "THRESHOLD",
        "OFFLOAD",
        "READY",
        "AGE",
    ]
    cells = row.split()
    assert cells[0] == "digits"
    assert cells[1] == "Ready"
    assert cells[-2] == "True"
    assert phase == "Ready"
    assert "jetson-orin-nano" in profiles
