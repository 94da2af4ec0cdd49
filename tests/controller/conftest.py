"""Fixtures: an emulated cluster with CRDs, the real operator (KopfRunner), a kubelet stand-in."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from inferedge.storage import ArtifactStore, LocalStore
from tests.controller.cluster import Api, ns_path, running_emulator, wait_for, write_kubeconfig
from tests.controller.crds import REPO, load_crds
from tests.controller.emulator import ClusterEmulator
from tests.controller.kubelet import Kubelet

EXAMPLE = REPO / "examples" / "digits-pipeline.yaml"
# ms per GFLOP of the synthetic profiles: the Jetson is ten times slower than the cloud.
SPEEDS = {"jetson-orin-nano": 60.0, "cloud-cpu": 6.0}
OPERATOR_ARGS = ["run", "--standalone", "--all-namespaces", "-m", "inferedge.controller.handlers"]


@dataclass
class Cluster:
    """The emulated cluster and helpers to read what the operator did."""

    api: Api
    url: str
    emulator: ClusterEmulator
    kubeconfig: Path

    def example(self, storage: dict[str, Any]) -> list[dict[str, Any]]:
        """The example's objects, the pipeline's storage replaced by `storage`."""
        docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
        for doc in docs:
            if doc["kind"] == "InferencePipeline":
                doc["spec"]["storage"] = copy.deepcopy(storage)
        return docs

    def apply(self, docs: list[dict[str, Any]]) -> None:
        kinds = {"DeviceProfile": "dprof", "InferencePipeline": "ipl", "Secret": "secrets"}
        for doc in docs:
            namespace = doc["metadata"].get("namespace", "default")
            self.api.create(ns_path(kinds[doc["kind"]], namespace), doc)

    def pipeline(self, name: str = "digits") -> dict[str, Any]:
        found = self.api.get(ns_path("ipl", name=name))
        assert found is not None, f"pipeline {name} is gone"
        return found

    def condition(self, name: str, kind: str) -> dict[str, Any] | None:
        conditions = (self.api.get(ns_path("ipl", name=name)) or {}).get("status", {})
        return next((c for c in conditions.get("conditions", []) if c["type"] == kind), None)

    def wait_ready(self, name: str = "digits", timeout: float = 30.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            body = self.api.get(ns_path("ipl", name=name)) or {}
            status = body.get("status") or {}
            ok = status.get("phase") == "Ready" and status.get("observedGeneration") == body.get(
                "metadata", {}
            ).get("generation")
            return body if ok else None

        return wait_for(f"{name} to be Ready", ready, timeout)

    def wait_phase(self, name: str, phase: str, timeout: float = 20.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            body = self.api.get(ns_path("ipl", name=name)) or {}
            return body if (body.get("status") or {}).get("phase") == phase else None

        return wait_for(f"{name} in phase {phase}", reached, timeout)

    def jobs(self, component: str | None = None) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/component={component}" if component else ""
        return self.api.items(ns_path("jobs"), selector)

    def events(self, name: str) -> list[dict[str, Any]]:
        """Events about the object `name`, oldest first (in the order they were created:
        resourceVersion is opaque to clients, so it is not used to order them)."""
        # Listed before the log is read: an event the operator posts in between would be listed
        # yet missing from an older copy of the log.
        found = [
            e for e in self.api.items(ns_path("events")) if e["involvedObject"].get("name") == name
        ]
        created = {
            obj["metadata"]["uid"]: i
            for i, (_, _, kind, obj) in enumerate(list(self.emulator._log))
            if kind == "ADDED"
        }
        return sorted(found, key=lambda e: created[e["metadata"]["uid"]])

    def created(self, plural: str, name_part: str) -> int:
        """How many objects whose name contains `name_part` were ever created (ADDED)."""
        return sum(
            1
            for _, key, kind, obj in list(self.emulator._log)
            if key[2] == plural and kind == "ADDED" and name_part in obj["metadata"]["name"]
        )


@pytest.fixture
def bare_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A fresh emulated API server without CRDs; KUBECONFIG points at it."""
    with running_emulator() as (emulator, url):
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        yield Cluster(api=Api(url), url=url, emulator=emulator, kubeconfig=kubeconfig)


@pytest.fixture
def cluster(bare_cluster: Cluster) -> Cluster:
    """The emulated API server with the inferedge CRDs installed."""
    for crd in load_crds():
        bare_cluster.api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    return bare_cluster


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A LocalStore directory shared by the operator and the kubelet stand-in."""
    path = tmp_path / "store"
    path.mkdir()
    return path


@pytest.fixture
def run_operator() -> Callable[[], AbstractContextManager[KopfRunner]]:
    """Start the real operator with kopf's KopfRunner (in a thread of this process)."""

    @contextmanager
    def start() -> Iterator[KopfRunner]:
        with KopfRunner(OPERATOR_ARGS, timeout=30) as runner:
            yield runner
        assert runner.exit_code == 0, runner.output[-3000:]
        assert runner.exception is None

    return start


@pytest.fixture
def kubelet(cluster: Cluster, store_dir: Path) -> Iterator[Kubelet]:
    """The kubelet stand-in writing into the local store."""

    def open_store() -> ArtifactStore:
        return LocalStore(store_dir)

    with Kubelet(cluster.api, open_store, speeds=SPEEDS) as stand_in:
        yield stand_in
