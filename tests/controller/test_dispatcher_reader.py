"""The dispatcher reader (`controller.dispatcher_reader`) round by round, on a clock the test
moves: the pipeline and its dispatcher pods are in the emulated API server, and each pod's port
is a small HTTP server answering `GET /distribution` with a `SiteStatus` (the real dispatcher's
answer is tested in tests/runtime; both sides share the model). The index the operator's watch
would fill is filled here from the API server before each round.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from inferedge.api.pipeline_status import PoolStatus
from inferedge.api.site import PoolState, SiteStatus
from inferedge.controller.cache import Indices, ObjectCache
from inferedge.controller.dispatcher_reader import DispatcherReader
from inferedge.controller.kube import Kube
from tests.controller.cluster import ns_path
from tests.controller.conftest import Cluster
from tests.controller.test_site_plan import site_documents
from tests.controller.test_tuning_status import PodEndpoint

NAME = "collaborative"
KEY = ("default", NAME)
POOLS = (
    PoolStatus(name="nano", profile="jetson-nano", version="resnet18", share=0.5,
               assigned_rate=30.0, replicas=1, ready_replicas=1),
    PoolStatus(name="xu4", profile="odroid-xu4", version="resnet18-exit2", share=0.3,
               assigned_rate=18.0, replicas=2, ready_replicas=2),
    PoolStatus(name="pi4", profile="raspberry-pi4", version="resnet18-exit1", share=0.2,
               assigned_rate=12.0, replicas=1, ready_replicas=0),
)  # fmt: skip


def distribution(**answered: int) -> tuple[int, bytes]:
    """A dispatcher's `GET /distribution` answer with these pools' answered counters."""
    pools = tuple(
        PoolState(name=name, version="resnet18", share=0.5, assigned_rate=30.0,
                  table_throughput=40.0, measured_throughput=None, replicas=1, in_flight=0,
                  answered=count)
        for name, count in answered.items()
    )  # fmt: skip
    status = SiteStatus(target_rate=60.0, planned_rate=60.0, accuracy=0.95, met=True, reason="",
                        cause="start", pools=pools, decisions=(), retried=0)  # fmt: skip
    return 200, status.model_dump_json(by_alias=True).encode()


def dispatcher_pod(name: str, port: int, restarts: int = 0) -> dict[str, Any]:
    """A dispatcher pod as its Deployment makes it, and its status as the kubelet writes it."""
    labels = {"app.kubernetes.io/instance": NAME, "app.kubernetes.io/component": "dispatcher"}
    container = {"name": "dispatcher", "image": "runtime",
                 "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}]}  # fmt: skip
    status = {"phase": "Running", "podIP": "127.0.0.1",
              "containerStatuses": [{"name": "dispatcher", "restartCount": restarts}]}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [container]}, "status": status}  # fmt: skip


class Site:
    """The pipeline in the API server, the index a watch would fill, and the reader."""

    def __init__(self, cluster: Cluster, kube: Kube, logger: logging.Logger) -> None:
        self.cluster, self.now = cluster, 100.0
        (pipeline,) = (d for d in site_documents() if d["kind"] == "InferencePipeline")
        cluster.api.create(ns_path("ipl"), pipeline)
        pools = [p.model_dump(mode="json", by_alias=True, exclude_none=True) for p in POOLS]
        cluster.api.merge(ns_path("ipl", name=NAME) + "/status", {"status": {"pools": pools}})
        self.index: dict[Any, list[dict[str, Any]]] = {}
        self.watched()
        objects = ObjectCache(Indices(self.index, {}, {}, {}))
        self.reader = DispatcherReader(
            objects=objects, kube=kube, interval_s=1.0, logger=logger, clock=lambda: self.now
        )

    def watched(self) -> None:
        """The index catches up with the API server, as kopf's watch would."""
        self.index[KEY] = [self.cluster.pipeline(NAME)]

    def add(self, body: dict[str, Any]) -> None:
        self.cluster.api.create(ns_path("pods"), copy.deepcopy(body))
        path = ns_path("pods", name=body["metadata"]["name"]) + "/status"
        self.cluster.api.merge(path, {"status": body["status"]})

    async def round(self, session: aiohttp.ClientSession, at: float) -> None:
        """One round of the reader at `at` seconds on its clock, the index caught up first."""
        self.watched()
        self.now = at
        await self.reader.read_all(session)

    def pools(self) -> list[dict[str, Any]]:
        return list(self.cluster.pipeline(NAME)["status"]["pools"])

    def rates(self) -> dict[str, float | None]:
        return {p["name"]: p.get("measuredRate") for p in self.pools()}

    def version(self) -> str:
        return str(self.cluster.pipeline(NAME)["metadata"]["resourceVersion"])


@pytest.fixture
def endpoints() -> Iterator[list[PodEndpoint]]:
    made = [PodEndpoint(), PodEndpoint()]
    yield made
    for endpoint in made:
        endpoint.close()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as opened:
        yield opened


@pytest.fixture
def kube(cluster: Cluster) -> Iterator[Kube]:
    client = Kube.connect()  # KUBECONFIG names the emulated API server
    yield client
    client.close()


LOGGER = "test.dispatcher_reader"


@pytest.mark.asyncio
async def test_rates_follow_the_counters_between_reads_and_only_measured_rate_is_written(
    cluster: Cluster,
    kube: Kube,
    session: aiohttp.ClientSession,
    endpoints: list[PodEndpoint],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    site, (a, _) = Site(cluster, kube, logging.getLogger(LOGGER)), endpoints
    site.add(dispatcher_pod(f"{NAME}-dispatcher-a", a.port))
    untouched = site.pools()
    a.answer = distribution(nano=1000, xu4=10)  # the dispatcher names nano and xu4, not pi4
    version = site.version()
    await site.round(session, 100.0)
    assert a.paths == ["/distribution"]
    assert site.version() == version  # a first read: no rate yet, nothing written

    a.answer = distribution(nano=1200, xu4=15)
    await site.round(session, 102.0)
    assert site.rates() == {"nano": 100.0, "xu4": 2.5, "pi4": None}
    # Every other figure is as the reconcile wrote it.
    assert [{k: v for k, v in p.items() if k != "measuredRate"} for p in site.pools()] == untouched

    a.answer = distribution(nano=1400, xu4=20)  # the same rates: no write
    version = site.version()
    await site.round(session, 104.0)
    assert site.version() == version

    # A malformed answer and a failed one are logged and leave the figures as they were.
    a.answer = (200, b'{"pools": "none"}')
    await site.round(session, 106.0)
    a.answer = (503, b"")
    await site.round(session, 108.0)
    assert site.version() == version
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(logged) == 2, logged
    assert "dispatcher pod collaborative-dispatcher-a: its /distribution answer: " in logged[0]
    assert "GET /distribution answered 503" in logged[1]
    assert "measured rates stay as they were" in logged[1]

    # The next good read measures from the last good one (at 104 s).
    a.answer = distribution(nano=2400, xu4=20)
    await site.round(session, 110.0)
    assert site.rates() == {"nano": 167.0, "xu4": 0.0, "pi4": None}  # 1000 / 6 s

    # The dispatcher restarted: its counters start again, no rate until the next read.
    a.answer = distribution(nano=5, xu4=1)
    version = site.version()
    await site.round(session, 111.0)
    assert site.version() == version
    a.answer = distribution(nano=105, xu4=1)
    await site.round(session, 112.0)
    assert site.rates() == {"nano": 100.0, "xu4": 0.0, "pi4": None}
    assert a.reads == 8


@pytest.mark.asyncio
async def test_several_dispatcher_pods_sum_and_a_new_or_restarted_one_waits_a_read(
    cluster: Cluster, kube: Kube, session: aiohttp.ClientSession, endpoints: list[PodEndpoint]
) -> None:
    site, (a, b) = Site(cluster, kube, logging.getLogger(LOGGER)), endpoints
    site.add(dispatcher_pod(f"{NAME}-dispatcher-a", a.port))
    a.answer = distribution(nano=0, xu4=0, pi4=0)
    await site.round(session, 0.0)
    a.answer = distribution(nano=100, xu4=20, pi4=0)
    await site.round(session, 1.0)
    assert site.rates() == {"nano": 100.0, "xu4": 20.0, "pi4": 0.0}

    # A second pod (a rollout, say): its first read gives no rate, so no sum is known yet.
    site.add(dispatcher_pod(f"{NAME}-dispatcher-b", b.port))
    a.answer = distribution(nano=150, xu4=40, pi4=0)
    b.answer = distribution(nano=1000, xu4=500, pi4=7)
    await site.round(session, 2.0)
    assert site.rates() == {"nano": 100.0, "xu4": 20.0, "pi4": 0.0}
    a.answer = distribution(nano=200, xu4=60, pi4=0)
    b.answer = distribution(nano=1010, xu4=500, pi4=9)
    await site.round(session, 4.0)
    assert site.rates() == {"nano": 25.0 + 5.0, "xu4": 10.0, "pi4": 1.0}

    # b's container restarted and has already served more than before: not a difference.
    restarted = dispatcher_pod(f"{NAME}-dispatcher-b", b.port, restarts=1)
    path = ns_path("pods", name=f"{NAME}-dispatcher-b") + "/status"
    cluster.api.merge(path, {"status": restarted["status"]})
    a.answer = distribution(nano=300, xu4=80, pi4=0)
    b.answer = distribution(nano=9000, xu4=900, pi4=90)
    await site.round(session, 5.0)
    assert site.rates() == {"nano": 30.0, "xu4": 10.0, "pi4": 1.0}
    a.answer = distribution(nano=400, xu4=100, pi4=0)
    b.answer = distribution(nano=9004, xu4=900, pi4=90)
    await site.round(session, 6.0)
    assert site.rates() == {"nano": 100.0 + 4.0, "xu4": 20.0, "pi4": 0.0}

    # One pod unreadable: its part is unknown, so no sum is, and the figures stay.
    a.answer = distribution(nano=500, xu4=120, pi4=0)
    b.answer = (503, b"")
    await site.round(session, 7.0)
    assert site.rates() == {"nano": 104.0, "xu4": 20.0, "pi4": 0.0}
    # Read again, b measures from its last good read (at 6 s).
    a.answer = distribution(nano=600, xu4=140, pi4=0)
    b.answer = distribution(nano=9024, xu4=900, pi4=90)
    await site.round(session, 8.0)
    assert site.rates() == {"nano": 100.0 + 10.0, "xu4": 20.0, "pi4": 0.0}


@pytest.mark.asyncio
async def test_a_pools_list_rewritten_meanwhile_refuses_the_patch_and_the_next_round_writes(
    cluster: Cluster,
    kube: Kube,
    session: aiohttp.ClientSession,
    endpoints: list[PodEndpoint],
    caplog: pytest.LogCaptureFixture,
) -> None:
    site, (a, _) = Site(cluster, kube, logging.getLogger(LOGGER)), endpoints
    site.add(dispatcher_pod(f"{NAME}-dispatcher-a", a.port))
    a.answer = distribution(nano=0, xu4=0, pi4=0)
    await site.round(session, 0.0)
    # The reconcile writes the pools in another order; the reader's copy is still the old one.
    reordered = list(reversed(site.pools()))
    cluster.api.merge(ns_path("ipl", name=NAME) + "/status", {"status": {"pools": reordered}})
    a.answer = distribution(nano=30, xu4=20, pi4=10)
    site.now = 1.0
    await site.reader.read_all(session)  # no watch event delivered meanwhile
    assert site.pools() == reordered  # no rate landed on the wrong pool
    assert any("HTTP 422" in r.getMessage() for r in caplog.records)

    a.answer = distribution(nano=60, xu4=40, pi4=20)
    await site.round(session, 2.0)
    assert site.rates() == {"pi4": 10.0, "xu4": 20.0, "nano": 30.0}
