"""A site of two edge pools behind a dispatcher: real `inferedge serve edge --pool` replicas and
a real `inferedge dispatch` on an authorizing nats-server, each signed in as its own identity.

The dispatcher spreads requests over both pools by their shares; when a replica is killed
while requests are in flight, every request is still answered (sent again to another replica)
and the shares are decided again for the pool's new replica count."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferedge.api.site import SiteConfig, SitePool, SiteStatus
from inferedge.local.processes import ServerProcess
from inferedge.local.serving import LocalBus, broker_and_servers
from tests.runtime.conftest import SHAPE, Exported, infer
from tests.runtime.test_serve_identities import args


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _status(url: str) -> SiteStatus:
    code, body = _get(f"{url}/distribution")
    assert code == 200
    return SiteStatus.model_validate_json(body)


def _wait_for_replicas(url: str, expected: dict[str, int]) -> SiteStatus:
    """Poll the dispatcher until it has heard from `expected` live replicas per pool."""
    for _ in range(600):
        status = _status(url)
        if {p.name: p.replicas for p in status.pools} == expected:
            return status
        # Each poll is a round trip to the dispatcher, which takes beats in between.
        _get(f"{url}/v2/health/live")
    raise AssertionError(f"replicas never reached {expected}: {status}")


def _site(tmp_path: Path, fixed_shares: dict[str, float] | None = None, **pools: int) -> Path:
    config = SiteConfig(
        namespace="default",
        pipeline="main",
        input_shape=SHAPE,
        target_rate=20,
        pools=tuple(
            SitePool(
                name=name, version="small", replicas=n, throughput=50, accuracy=0.9,
                queue_limit=1 if fixed_shares else 4,
            )
            for name, n in pools.items()
        ),
        beat_timeout_s=1.0,
        request_timeout_s=20,
        fixed_shares=fixed_shares,
    )  # fmt: skip
    path = tmp_path / "site.json"
    path.write_text(config.model_dump_json(by_alias=True))
    return path


def _replica(
    bus: LocalBus, exported: Exported, tmp_path: Path, pool: str, name: str, *more: str
) -> ServerProcess:
    extra = ("--threshold", "0", "--pool", pool, "--replica", name, *more)
    return bus.server("edge", args(exported, "edge", *extra), tmp_path / f"{name}.log")


@pytest.fixture
def bus(exported: Exported, tmp_path: Path) -> Any:
    with broker_and_servers(
        "default", "main", {}, tmp_path, env={}, max_payload=1 << 20, start_timeout_s=60
    ) as running:
        yield running


def test_the_dispatcher_spreads_requests_and_loses_none_when_a_replica_dies(
    bus: LocalBus, exported: Exported, tmp_path: Path, images: Callable[..., np.ndarray]
) -> None:
    replicas = [
        _replica(bus, exported, tmp_path, "a", "a-0"),
        _replica(bus, exported, tmp_path, "a", "a-1"),
        _replica(bus, exported, tmp_path, "b", "b-0"),
    ]
    dispatcher = bus.server(
        "dispatcher", ["--site", str(_site(tmp_path, a=2, b=1)), "--port", "0"],
        tmp_path / "dispatcher.log",
    )  # fmt: skip
    x = images(1)
    with replicas[0], replicas[1], replicas[2], dispatcher:
        url = dispatcher.started.url
        edge_answer = infer(replicas[2].started.url, x)
        _wait_for_replicas(url, {"a": 2, "b": 1})
        assert _get(f"{url}/v2/health/ready")[0] == 200

        first = [infer(url, x) for _ in range(12)]
        assert {json.dumps(a["outputs"]) for a in first} == {json.dumps(edge_answer["outputs"])}
        status = _status(url)
        shares = {p.name: p.share for p in status.pools}
        assert shares["a"] == pytest.approx(2 / 3)
        assert shares["b"] == pytest.approx(1 / 3)
        assert {p.name: p.answered for p in status.pools} == {"a": 8, "b": 4}

        # Kill one replica of `a` while 40 requests are being answered, 8 at a time.
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(infer, url, x) for _ in range(40)]
            futures[5].result()
            assert replicas[0].pid is not None
            os.kill(replicas[0].pid, signal.SIGKILL)
            answers = [f.result() for f in futures]
        assert len(answers) == 40
        assert all(a["outputs"] == edge_answer["outputs"] for a in answers)
        status = _wait_for_replicas(url, {"a": 1, "b": 1})
        causes = [d.cause for d in status.decisions]
        assert "pool a: 2 -> 1 replicas" in causes
        shares = {p.name: p.share for p in status.pools}
        assert shares["a"] == pytest.approx(0.5)
        assert shares["b"] == pytest.approx(0.5)
        assert sum(p.answered for p in status.pools) == 52

        # Bad input at the ingress: a clear 4xx, and the dispatcher lives on.
        code, body = _get(f"{url}/v2/models/other")
        assert code == 404
        assert b"expected 'main'" in body
        request = urllib.request.Request(
            f"{url}/v2/models/main/infer", data=b"{not json", method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 400
        assert infer(url, x)["outputs"] == edge_answer["outputs"]


def test_fixed_shares_are_followed_strictly_even_when_a_pool_is_slow(
    bus: LocalBus, exported: Exported, tmp_path: Path, images: Callable[..., np.ndarray]
) -> None:
    fast = _replica(bus, exported, tmp_path, "a", "a-0")
    slow = _replica(bus, exported, tmp_path, "b", "b-0", "--emulate-slowdown", "30")
    site = _site(tmp_path, fixed_shares={"a": 1.0, "b": 1.0}, a=1, b=1)
    dispatcher = bus.server("dispatcher", ["--site", str(site), "--port", "0"], tmp_path / "d.log")
    x = images(1)
    with fast, slow, dispatcher:
        url = dispatcher.started.url
        _wait_for_replicas(url, {"a": 1, "b": 1})
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: infer(url, x), range(16)))
        assert len(answers) == 16
        # A round robin that passed over its slow pool would send it fewer than half.
        assert {p.name: p.answered for p in _status(url).pools} == {"a": 8, "b": 8}
