"""A site's `status.pools[].measuredRate` through the real operator (`inferedge operator
--tuning-interval`, its own process) against the emulated API server: the dispatcher pod is a
Pod object whose port is a small HTTP server answering `GET /distribution` with counters that
grow at known rates, and the operator's reads turn them into each pool's rate. A new decision
rewrites status.pools and keeps the measured figures (here while the dispatcher cannot be read,
so no read could have restored them).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from inferedge.api.site import PoolState, SiteStatus
from inferedge.storage import LocalStore
from tests.controller.cluster import ns_path, wait_for
from tests.controller.conftest import Cluster
from tests.controller.kubelet import Kubelet
from tests.controller.test_dispatcher_reader import dispatcher_pod
from tests.controller.test_restart import operator_process
from tests.controller.test_site import NAME, SPEEDS, site_docs

RATES = {"nano": 200.0, "xu4": 50.0, "pi4": 0.0}
"""Requests a second each pool serves, as the stand-in dispatcher counts them."""


class CountingDispatcher:
    """A dispatcher's port: `GET /distribution` with each pool's `answered` grown at its rate
    since the server started (on the monotonic clock), or `failing` when set."""

    def __init__(self) -> None:
        self.failing: int | None = None
        self.reads = 0
        started = time.monotonic()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.reads += 1
                status, body = endpoint.failing or 200, b""
                if self.path == "/distribution" and status == 200:
                    body = answer(time.monotonic() - started)
                elif status == 200:
                    status = 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def answer(elapsed_s: float) -> bytes:
    pools = tuple(
        PoolState(name=name, version="resnet18", share=1 / 3, assigned_rate=20.0,
                  table_throughput=40.0, measured_throughput=None, replicas=1, in_flight=0,
                  answered=int(rate * elapsed_s))
        for name, rate in RATES.items()
    )  # fmt: skip
    status = SiteStatus(target_rate=60.0, planned_rate=60.0, accuracy=0.95, met=True, reason="",
                        cause="start", pools=pools, decisions=(), retried=0)  # fmt: skip
    return status.model_dump_json(by_alias=True).encode()


@pytest.fixture
def dispatcher() -> Iterator[CountingDispatcher]:
    made = CountingDispatcher()
    yield made
    made.close()


@pytest.fixture
def site_kubelet(cluster: Cluster, store_dir: Path) -> Iterator[Kubelet]:
    """The kubelet stand-in, knowing every board of the site."""
    with Kubelet(cluster.api, lambda: LocalStore(store_dir), speeds=SPEEDS) as stand_in:
        yield stand_in


def near(shown: dict[str, Any]) -> bool:
    """Whether every pool shows a rate near the one it serves (reads are not timed exactly)."""
    return all(
        shown.get(name) is not None and abs(shown[name] - rate) <= 0.2 * rate
        for name, rate in RATES.items()
    )


def test_the_pools_show_the_rates_the_dispatcher_counts_and_a_new_decision_keeps_them(
    cluster: Cluster,
    site_kubelet: Kubelet,
    store_dir: Path,
    tmp_path: Path,
    dispatcher: CountingDispatcher,
) -> None:
    body = dispatcher_pod(f"{NAME}-dispatcher-6f7d9-x2k4q", dispatcher.port)
    cluster.api.create(ns_path("pods"), copy.deepcopy(body))
    path = ns_path("pods", name=body["metadata"]["name"]) + "/status"
    cluster.api.merge(path, {"status": body["status"]})
    cluster.apply(site_docs(store_dir))
    args = ["--standalone", "--all-namespaces", "--tuning-interval", "0.2"]
    with operator_process(cluster, tmp_path / "operator.log", args):
        cluster.wait_ready(NAME, timeout=60)

        def rates() -> dict[str, Any]:
            pools = cluster.pipeline(NAME)["status"].get("pools") or []
            return {p["name"]: p.get("measuredRate") for p in pools}

        wait_for("the pools' measured rates", lambda: near(rates()), timeout=60)
        assert rates()["pi4"] == 0.0  # a pool that serves nothing shows 0, not nothing

        # The dispatcher cannot be read any more: the figures stay as they were ...
        dispatcher.failing = 503
        reads = dispatcher.reads
        wait_for("a failed read", lambda: dispatcher.reads > reads)
        kept = rates()
        # The reconciles that the rates' own writes caused kept them too.
        assert kept["nano"] > kept["xu4"] > kept["pi4"] == 0.0, kept
        # ... also when a new decision rewrites status.pools.
        pools = copy.deepcopy(cluster.pipeline(NAME)["spec"]["edge"]["pools"])
        pools[1]["replicas"] = 3
        cluster.api.merge(ns_path("ipl", name=NAME), {"spec": {"edge": {"pools": pools}}})
        status = cluster.wait_ready(NAME, timeout=60)["status"]
        assert status["distribution"]["cause"] == "pool xu4: 1 -> 3 replicas"
        assert next(p for p in status["pools"] if p["name"] == "xu4")["replicas"] == 3
        assert {p["name"]: p.get("measuredRate") for p in status["pools"]} == kept
    log = (tmp_path / "operator.log").read_text()
    assert "GET /distribution answered 503" in log
