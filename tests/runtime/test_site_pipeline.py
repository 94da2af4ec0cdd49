"""A site served as a pipeline over two pools: real `inferedge serve edge --pool --stage`
replicas and a real `inferedge dispatch` on an authorizing nats-server.

Each request goes through the first pool's stage and then the second's, the dispatcher carrying
the activation between them; the answers are the whole model's, and a replica of the second
stage killed while requests are in flight loses none of them."""

from __future__ import annotations

import os
import signal
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from inferedge.api.site import SiteConfig, SitePool, SiteStage
from inferedge.local.processes import ServerProcess
from inferedge.local.serving import LocalBus, broker_and_servers
from tests.conftest import run_inferedge
from tests.runtime.conftest import SHAPE, Exported, infer
from tests.runtime.test_site import _status, _wait_for_replicas


@pytest.fixture
def bus(exported: Exported, tmp_path: Path) -> Iterator[LocalBus]:
    with broker_and_servers(
        "default", "whole", {}, tmp_path, env={}, max_payload=1 << 20, start_timeout_s=60
    ) as running:
        yield running


def _replica(
    bus: LocalBus, exported: Exported, tmp_path: Path, name: str, *, stage: str
) -> ServerProcess:
    pool = name.split("-", maxsplit=1)[0]
    root = exported.store.root
    prefix = exported.prefixes["whole"]
    args = ["--store", str(root), "--prefix", prefix, "--manifest-sha256", exported.pin(prefix),
            "--port", "0", "--cache-dir", str(root.parent / "cache-stages"),
            "--threshold", "1", "--pool", pool, "--replica", name, "--stage", stage]  # fmt: skip
    return bus.server("edge", args, tmp_path / f"{name}.log")


def _site(tmp_path: Path, exported: Exported, cut: int, final: int) -> Path:
    config = SiteConfig(
        namespace="default",
        pipeline="whole",
        input_shape=SHAPE,
        target_rate=20,
        pools=(
            SitePool(name="a", version="whole", replicas=1, throughput=50, accuracy=0.9),
            SitePool(name="b", version="whole", replicas=2, throughput=50, accuracy=0.9),
        ),
        beat_timeout_s=1.0,
        request_timeout_s=20,
        stages=(SiteStage(pool="a", start=0, end=cut), SiteStage(pool="b", start=cut, end=final)),
        stage_plan=exported.plans["whole"].hash,
    )
    path = tmp_path / "site.json"
    path.write_text(config.model_dump_json(by_alias=True))
    return path


def test_a_pipeline_over_two_pools_answers_as_the_model_and_loses_nothing(
    bus: LocalBus, exported: Exported, tmp_path: Path, images: Callable[..., np.ndarray]
) -> None:
    plan = exported.plans["whole"]
    cut = sorted(e.cut_index for e in plan.exits)[0]
    stage_b = f"{cut}:{plan.final_cut}"
    replicas = [
        _replica(bus, exported, tmp_path, "a-0", stage=f"0:{cut}"),
        _replica(bus, exported, tmp_path, "b-0", stage=stage_b),
        _replica(bus, exported, tmp_path, "b-1", stage=stage_b),
    ]
    site = _site(tmp_path, exported, cut, plan.final_cut)
    dispatcher = bus.server("dispatcher", ["--site", str(site), "--port", "0"], tmp_path / "d.log")
    x = images(3)
    expected = exported.predict(x)
    with replicas[0], replicas[1], replicas[2], dispatcher:
        url = dispatcher.started.url
        _wait_for_replicas(url, {"a": 1, "b": 2})
        answer = infer(url, x, "whole")
        assert answer["outputs"][0]["data"] == expected
        # The final classifier answered: threshold 1 lets no exit take a row.
        assert answer["parameters"]["exit_index"] == [len(plan.exits)] * 3

        one = images(1, seed=3)
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(infer, url, one, "whole") for _ in range(30)]
            futures[4].result()
            assert replicas[1].pid is not None
            os.kill(replicas[1].pid, signal.SIGKILL)
            answers = [f.result() for f in futures]
        assert {a["outputs"][0]["data"][0] for a in answers} == set(exported.predict(one))
        status = _wait_for_replicas(url, {"a": 1, "b": 1})
        assert status.stages is not None
        assert [(s.pool, s.start, s.end) for s in status.stages] == [
            ("a", 0, cut),
            ("b", cut, plan.final_cut),
        ]
        assert [d.cause for d in status.decisions] == ["start"]  # a pipeline shares nothing
        answered = {p.name: p.answered for p in status.pools}
        assert answered["a"] == 31  # every request went through the first stage once
        assert answered["b"] == 31  # and on to the second, once answered there

        # A request the first stage cannot take: a clear 400 at the ingress.
        request = urllib.request.Request(
            f"{url}/v2/models/whole/infer", data=b'{"inputs": []}', method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 400
        assert _status(url).pools[0].answered == 31


def test_a_stage_off_the_plans_steps_stops_the_replica_in_one_line(exported: Exported) -> None:
    plan = exported.plans["whole"]
    first = sorted(e.cut_index for e in plan.exits)[0]
    root = exported.store.root
    prefix = exported.prefixes["whole"]
    done = run_inferedge(
        "serve", "edge", "--store", root, "--prefix", prefix,
        "--manifest-sha256", exported.pin(prefix), "--port", "0",
        "--cache-dir", root.parent / "cache-stages", "--pool", "a", "--replica", "a-0",
        "--stage", f"{first + 1}:{plan.final_cut}",
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "a stage starts and ends at those" in lines[0]
