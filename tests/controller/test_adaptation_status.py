"""A pipeline with spec.adaptation under the real operator and the emulated API server.

The operator plans the operating space, tells the edge through the ConfigMap to follow the
link, and reads each running edge pod's `GET /adaptation` (answered here by small HTTP servers
standing in for the pods, as for `status.tuning`; the real edge's answer is tested in
tests/runtime/test_adaptation.py, and both sides share `AdaptationReport`) into
`status.adaptation`, with an Event when the pods move, at most one a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferedge.api.adaptation import AdaptationReport, PointReport
from inferedge.controller.adaptation_reader import pod_adaptation, switch_events
from inferedge.core.link import Link
from tests.controller.cluster import ns_path, wait_for
from tests.controller.conftest import Cluster
from tests.controller.kubelet import Kubelet
from tests.controller.test_kubectl import kubectl
from tests.controller.test_restart import operator_process
from tests.controller.test_tuning_status import PodEndpoint, add_pod, pod

ADAPTATION = {"deadlineMs": 40, "switching": {"confirmations": 5, "minDwellS": 1}}


def report(split: int, switches: int, *, mbps: float = 19.53) -> AdaptationReport:
    link = Link(bandwidth_mbps=mbps, rtt_ms=8.26)
    return AdaptationReport(
        mode="follow",
        point=PointReport(split=split, edge_exits=(1, 2), cloud_exits=(9,), threshold=0.55,
                          accuracy=0.98, latency_ms=21.5, feasible=True),
        link=link, latest=link, switches=switches, corrections=4, edge_time_factor=2.1,
        points=169, states=66,
    )  # fmt: skip


def test_status_shows_each_edge_pods_point_and_posts_one_event_a_minute(
    cluster: Cluster, kubelet: Kubelet, store_dir: Path, tmp_path: Path
) -> None:
    a, b, c = PodEndpoint(), PodEndpoint(), PodEndpoint()
    try:
        a.answer = (200, report(0, 0).model_dump_json().encode())
        c.answer = (200, b'{"mode": "sideways"}')
        for body in (
            pod("digits-edge-a", port=a.port),
            pod("digits-edge-b", port=b.port),  # serves no space: 404
            pod("digits-edge-c", port=c.port),  # answers something that is not a report
        ):
            add_pod(cluster, body)
        docs = cluster.example({"uri": str(store_dir)})
        for doc in docs:
            if doc["kind"] == "InferencePipeline":
                doc["spec"]["adaptation"] = ADAPTATION
        cluster.apply(docs)
        args = ["--standalone", "--all-namespaces", "--tuning-interval", "0.2"]
        with operator_process(cluster, tmp_path / "operator.log", args):

            def adaptation() -> dict[str, Any] | None:
                found: dict[str, Any] | None = (cluster.pipeline().get("status") or {}).get(
                    "adaptation"
                )
                return found

            shown = wait_for("status.adaptation", adaptation, timeout=60)
            by_pod = {p["pod"]: p for p in shown["pods"]}
            assert by_pod["digits-edge-a"] == {
                "pod": "digits-edge-a", "state": "Adapting", "message": "", "mode": "follow",
                "split": 0, "edgeExits": [1, 2], "cloudExits": [9], "threshold": 0.55,
                "bandwidthMbps": 20.0, "rttMs": 8.3, "feasible": True, "switches": 0,
                "corrections": 4,
            }  # fmt: skip
            assert by_pod["digits-edge-b"]["state"] == "Off"
            assert by_pod["digits-edge-c"]["state"] == "Unreachable"
            assert by_pod["digits-edge-c"]["message"].startswith("its /adaptation answer: ")
            assert (shown["split"], shown["switches"]) == (0, 0)
            # the example's edge DeviceProfile also tunes: /tuning is read beside it
            assert "/adaptation" in a.paths

            # The operator planned a space and tells the edge to follow the link.
            body = cluster.wait_ready(timeout=60)
            plan = body["status"]["plan"]
            assert plan["candidates"] == plan["split"] - 1 > 3  # every inner cut
            assert (plan["edgeExits"], plan["exits"]) == ([], f"space:{plan['candidates']}")
            assert body["status"]["adaptation"]["pods"] == shown["pods"]
            (config,) = [
                m for m in cluster.api.items(ns_path("configmaps"))
                if m["metadata"]["name"].startswith("digits")
            ]  # fmt: skip
            data = config["data"]
            assert data["INFEREDGE_SERVE_ADAPT"] == "follow"
            assert data["INFEREDGE_SERVE_SWITCH_CONFIRMATIONS"] == "5"
            header, row = kubectl(cluster, tmp_path, "get", "ipl", "-o", "wide").splitlines()
            at = header.index("SERVING")  # by position: the COST cell before it is empty here
            assert row[at:].split()[0] == "0", (header, row)
            assert not [e for e in cluster.events("digits") if e["reason"] == "PointSwitched"]

            # The pod moves: the status follows, and one Event says where.
            a.answer = (200, report(7, 2, mbps=0.97).model_dump_json().encode())
            wait_for("the new split", lambda: (s := adaptation()) and s.get("split") == 7)

            def switched() -> list[dict[str, Any]]:
                return [e for e in cluster.events("digits") if e["reason"] == "PointSwitched"]

            (event,) = wait_for("a PointSwitched Event", switched)
            assert "2 switch(es)" in event["message"]
            assert "digits-edge-a: split 7" in event["message"]
            # It moves again at once: the status follows, the Event waits a minute.
            a.answer = (200, report(3, 3).model_dump_json().encode())
            wait_for("the next split", lambda: (s := adaptation()) and s.get("split") == 3)
            reads = a.reads
            wait_for("three more rounds", lambda: a.reads >= reads + 3)
            assert len(switched()) == 1

            # Adaptation is turned off: the status drops it.
            cluster.api.merge(ns_path("ipl", name="digits"), {"spec": {"adaptation": None}})
            wait_for("status.adaptation removed", lambda: adaptation() is None, timeout=30)
    finally:
        for endpoint in (a, b, c):
            endpoint.close()


def test_an_event_only_when_the_switches_grew() -> None:
    entry = pod_adaptation("p", report(4, 3)).model_dump(mode="json", by_alias=True)
    after = {"switches": 3, "pods": [entry]}
    (event,) = switch_events({"switches": 1}, after)
    assert (event.type, event.reason) == ("Normal", "PointSwitched")
    assert event.message.startswith("2 switch(es) of operating point; p: split 4, c_thr 0.55")
    assert switch_events({"switches": 3}, after) == []
    assert len(switch_events(None, after)) == 1
    assert switch_events({"switches": "x"}, after) == []
