"""The edge pods' knob tuners in the pipeline's status.

The real operator (`inferedge operator --tuning-interval`, its own process) runs against the
emulated API server. The edge pods are Pod objects whose address is this machine, each port
answered by a small HTTP server standing in for one pod's `GET /tuning` (the real edge's answer
is tested in tests/runtime/test_tuning_setup.py; both sides share `TuningReport`).
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from inferedge.api.pipeline_status import PodTuning, TuningStatus
from inferedge.api.tuning import TuningReport, WindowReport
from inferedge.controller.edge_reads import edge_pods, same_figures
from inferedge.controller.tuning_reader import pod_tuning, tuning_status
from tests.controller.cluster import ns_path, wait_for
from tests.controller.conftest import Cluster
from tests.controller.kubelet import Kubelet
from tests.controller.test_kubectl import kubectl
from tests.controller.test_restart import operator_process


def report(cost: float, *, batch: int = 4, clocks: bool = True, windows: int = 3) -> TuningReport:
    """A report as an edge serves it for `?windows=1`."""
    latest = WindowReport(
        index=windows - 1, finished_s=12.5, cpu_khz=1_420_800.0, gpu_khz=624_750.0,
        batch=batch, served_batch=3.2, arrival_rate_hz=66.0, latency_ms=41.237,
        energy_j_per_request=0.0123456, cost=cost, converged=True,
    )  # fmt: skip
    return TuningReport(
        optimiser="ecogd", emulated=True, clocks=clocks, started_unix=1_700_000_000.0,
        reference={"energy_j_per_request": 0.02, "latency_s": 0.05},
        setting={"cpu_khz": 1_420_800.0, "gpu_khz": 624_750.0, "batch": float(batch)},
        window_count=windows, windows=[latest] if windows else [],
    )  # fmt: skip


class PodEndpoint:
    """One pod's port: answers `GET /tuning` with what `answer` holds, and counts the reads."""

    def __init__(self) -> None:
        self.answer: tuple[int, bytes] = (404, b"")
        self.reads = 0
        self.paths: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.reads += 1
                endpoint.paths.append(self.path)
                status, body = endpoint.answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoints() -> Iterator[dict[str, PodEndpoint]]:
    made = {name: PodEndpoint() for name in ("a", "b", "c")}
    yield made
    for endpoint in made.values():
        endpoint.close()


def pod(
    name: str, *, port: int | None, phase: str = "Running", pipeline: str = "digits"
) -> dict[str, Any]:
    """An edge pod as the Deployment's ReplicaSet makes it, and its status as the kubelet
    writes it."""
    container: dict[str, Any] = {"name": "edge", "image": "runtime-jetson"}
    if port is not None:
        container["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    labels = {"app.kubernetes.io/instance": pipeline, "app.kubernetes.io/component": "edge"}
    status: dict[str, Any] = {"phase": phase}
    if port is not None and phase == "Running":
        status["podIP"] = "127.0.0.1"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [container]},
        "status": status,
    }


def add_pod(cluster: Cluster, body: dict[str, Any]) -> None:
    cluster.api.create(ns_path("pods"), copy.deepcopy(body))
    name = body["metadata"]["name"]
    cluster.api.merge(ns_path("pods", name=name) + "/status", {"status": body["status"]})


def test_status_shows_each_edge_pods_setting_and_cost_and_is_written_only_on_change(
    cluster: Cluster,
    kubelet: Kubelet,
    store_dir: Path,
    tmp_path: Path,
    endpoints: dict[str, PodEndpoint],
) -> None:
    a, b, c = endpoints["a"], endpoints["b"], endpoints["c"]
    a.answer = (200, report(0.6125).model_dump_json().encode())
    c.answer = (200, b'{"optimiser": 5}')
    for body in (
        pod("digits-edge-a", port=a.port),
        pod("digits-edge-b", port=b.port),  # its tuner did not start: 404
        pod("digits-edge-c", port=c.port),  # answers something that is not a report
        pod("digits-edge-d", port=None),  # running, but no port named http
        pod("digits-edge-e", port=a.port, phase="Pending"),  # not read
        pod("other-edge-a", port=a.port, pipeline="other"),  # another pipeline's
    ):
        add_pod(cluster, body)
    cluster.apply(cluster.example({"uri": str(store_dir)}))
    args = ["--standalone", "--all-namespaces", "--tuning-interval", "0.2"]
    with operator_process(cluster, tmp_path / "operator.log", args):

        def tuning() -> dict[str, Any] | None:
            status = cluster.pipeline().get("status") or {}
            found: dict[str, Any] | None = status.get("tuning")
            return found

        shown = wait_for("status.tuning", tuning, timeout=60)
        by_pod = {p["pod"]: p for p in shown["pods"]}
        assert sorted(by_pod) == [
            "digits-edge-a",
            "digits-edge-b",
            "digits-edge-c",
            "digits-edge-d",
        ]
        assert by_pod["digits-edge-a"] == {
            "pod": "digits-edge-a", "state": "Tuning", "message": "", "optimiser": "ecogd",
            "emulated": True, "batchSize": 4, "cpuMhz": 1420.8, "gpuMhz": 624.8, "cost": 0.6125,
            "latencyMs": 41.24, "energyJPerRequest": 0.01235, "converged": True, "windows": 3,
        }  # fmt: skip
        assert shown["cost"] == 0.6125  # the mean over the pods with a cost: a's alone
        assert by_pod["digits-edge-b"]["state"] == "Off"
        assert "its tuner did not start" in by_pod["digits-edge-b"]["message"]
        assert by_pod["digits-edge-c"]["state"] == "Unreachable"
        assert by_pod["digits-edge-c"]["message"].startswith(
            "its /tuning answer: optimiser: Input should be a valid string"
        )
        assert "cost" not in by_pod["digits-edge-c"]
        assert by_pod["digits-edge-d"]["state"] == "Unreachable"
        assert "no pod address or port named http" in by_pod["digits-edge-d"]["message"]
        assert set(a.paths) == {"/tuning?windows=1"}  # the latest window only

        # The reconciler leaves status.tuning alone, and reaches Ready beside it.
        body = cluster.wait_ready(timeout=60)
        assert body["status"]["tuning"]["pods"] == shown["pods"]
        header, row = kubectl(cluster, tmp_path, "get", "ipl", "-o", "wide").splitlines()
        at = header.index("COST")  # by position: cells after it (SERVING) are empty here
        assert row[at:].split()[0] == "0.6125"

        # Nothing changed: rounds go by without a write.
        version, reads = cluster.pipeline()["metadata"]["resourceVersion"], a.reads
        wait_for("five more rounds", lambda: a.reads >= reads + 5)
        assert cluster.pipeline()["metadata"]["resourceVersion"] == version

        a.answer = (200, report(0.5, batch=8).model_dump_json().encode())
        moved = wait_for("the new cost", lambda: (t := tuning()) and t.get("cost") == 0.5 and t)
        assert moved["pods"][0] == {**by_pod["digits-edge-a"], "cost": 0.5, "batchSize": 8}

        # The edge DeviceProfile stops tuning: the status drops its tuning.
        cluster.api.merge(ns_path("dprof", name="jetson-orin-nano"), {"spec": {"tuning": None}})
        wait_for("status.tuning removed", lambda: tuning() is None, timeout=30)


def test_edge_pods_are_the_running_ones_by_name_with_their_tuning_url() -> None:
    pods = [
        pod("z", port=8080),
        pod("y", port=8080, phase="Pending"),
        {**pod("x", port=8080), "metadata": {"name": "x", "deletionTimestamp": "2026-01-01"}},
        pod("w", port=None),
        {**pod("v", port=8080), "status": {"phase": "Running", "podIP": "fd00::7"}},
    ]  # fmt: skip
    found = edge_pods(pods, "/tuning", {"windows": "1"})
    assert [p.name for p in found] == ["v", "w", "z"]
    assert str(found[0].url) == "http://[fd00::7]:8080/tuning?windows=1"
    assert found[1].url is None
    assert str(found[2].url) == "http://127.0.0.1:8080/tuning?windows=1"


def test_a_pod_tuning_the_batch_only_shows_no_clocks_and_one_without_windows_no_cost() -> None:
    entry = pod_tuning("p", report(0.7, clocks=False, windows=0))
    assert (entry.state, entry.batch_size, entry.cpu_mhz, entry.gpu_mhz) == (
        "Tuning",
        4,
        None,
        None,
    )
    assert (entry.cost, entry.latency_ms, entry.converged, entry.windows) == (None, None, None, 0)
    status = tuning_status([entry, pod_tuning("q", report(0.5))], 2, "2026-12-04T00:00:00Z")
    assert (status.cost, status.unlisted_pods) == (0.5, 2)
    off = PodTuning(pod="r", state="Off")
    assert tuning_status([off], 0, "t").cost is None


def test_figures_compare_without_the_time_they_were_read() -> None:
    first = TuningStatus(updated_at="t1", cost=0.5, pods=(pod_tuning("p", report(0.5)),))
    later = first.model_copy(update={"updated_at": "t2"})
    dumped = [s.model_dump(mode="json", by_alias=True) for s in (first, later)]
    assert same_figures(dumped[0], dumped[1])
    written = json.loads(json.dumps(dumped[0]))  # as read back, nulls dropped by the API
    written = {k: v for k, v in written.items() if v is not None}
    assert same_figures(written, dumped[1])
    moved = TuningStatus(updated_at="t2", cost=0.4, pods=(pod_tuning("p", report(0.4)),))
    assert not same_figures(dumped[0], moved.model_dump(mode="json", by_alias=True))
    assert not same_figures(None, dumped[1])
