"""`inferedge serve edge|cloud` as real processes over a real nats-server: answers, degraded
answers when the cloud dies, hot reload of a new plan under load, live c_thr, refused reloads."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from inferedge.local.processes import ServerProcess
from inferedge.transport import EmbeddedNats
from inferedge.transport.client import Messenger
from inferedge.transport.control import ReloadError, reload_pipeline
from inferedge.transport.errors import RemoteError
from inferedge.transport.subjects import reload_subject
from tests.clitools import RunCli, assert_one_line_error
from tests.runtime.conftest import Exported, infer

REPO = Path(__file__).resolve().parents[2]
Images = Callable[..., np.ndarray]


def server(
    role: str, exported: Exported, prefix: str, nats: EmbeddedNats, *extra: str
) -> ServerProcess:
    root = exported.store.root
    args = ["--store", str(root), "--prefix", prefix, "--manifest-sha256", exported.pin(prefix),
            "--nats-url", nats.url, "--port", "0",
            "--cache-dir", str(root.parent / f"cache-{role}"), *extra]  # fmt: skip
    return ServerProcess(role, args, root.parent / "logs" / f"{role}.log", start_timeout_s=60)


@pytest.fixture
def nats_server() -> Iterator[EmbeddedNats]:
    with EmbeddedNats() as nats:
        yield nats


@pytest.fixture(scope="module")
def second_plan(exported: Exported) -> str:
    """The 'other' plan published as a second plan of pipeline 'main'."""
    source = exported.prefixes["other"]
    prefix = "default/main/" + source.split("/", 2)[2]
    shutil.copytree(exported.store.root / source, exported.store.root / prefix, dirs_exist_ok=True)
    return prefix


def test_edge_and_cloud_processes_answer_and_degrade(
    exported: Exported, nats_server: EmbeddedNats, images: Images
) -> None:
    prefix = exported.prefixes["main"]
    cloud = server("cloud", exported, prefix, nats_server)
    edge = server("edge", exported, prefix, nats_server, "--threshold", "2")
    with cloud, edge:
        url = edge.started.url
        x = images(3)
        reply = infer(url, x)
        params = reply["parameters"]
        assert params["location"] == ["cloud"] * 3  # type: ignore[index]
        assert params["degraded"] == [False] * 3  # type: ignore[index]
        outputs = {o["name"]: o["data"] for o in reply["outputs"]}  # type: ignore[attr-defined]
        assert outputs["prediction"] == exported.predict(x)
        assert cloud.stop() == 0
        degraded = infer(url, images(1))["parameters"]
        assert degraded["degraded"] == [True]  # type: ignore[index]
        assert degraded["location"] == ["edge"]  # type: ignore[index]
    assert not edge.alive()
    assert edge.stop() == 0


def test_hot_reload_of_a_new_plan_under_load_fails_and_degrades_nothing(
    exported: Exported, nats_server: EmbeddedNats, images: Images, second_plan: str
) -> None:
    old, new = exported.plans["main"].hash, exported.plans["other"].hash
    prefix = exported.prefixes["main"]
    # c_thr 2 sends every request to the cloud, so every request crosses the reload.
    pin = ("--pin", f"{second_plan}={exported.pin(second_plan)}")
    cloud = server("cloud", exported, prefix, nats_server, "--max-wait-ms", "1", *pin)
    edge = server("edge", exported, prefix, nats_server, "--threshold", "2", *pin)
    x = images(1)

    async def load_and_reload() -> tuple[list[dict[str, object]], list[str]]:
        stop = asyncio.Event()
        answers: list[dict[str, object]] = []

        async def client() -> None:
            while not stop.is_set():
                answers.append(await asyncio.to_thread(infer, edge.started.url, x))

        clients = [asyncio.create_task(client()) for _ in range(4)]
        async with await Messenger.connect(nats_server.url) as messenger:
            await asyncio.sleep(0)  # let the clients start before the reload
            acks = await reload_pipeline(
                messenger, "default", "main", prefix=second_plan, replicas={"cloud": 1, "edge": 1}
            )
        after = len(answers)
        while len(answers) < after + 8:  # a few requests on the new plan
            await asyncio.wait(clients, timeout=0.05)
        stop.set()
        await asyncio.gather(*clients)
        return answers, [a.plan_hash for a in acks]

    with cloud, edge:
        answers, acked = asyncio.run(load_and_reload())
    assert acked == [new, new]  # cloud first, then the edge
    params = [a["parameters"] for a in answers]
    assert all(p["degraded"] == [False] for p in params)  # type: ignore[index]
    assert all(p["location"] == ["cloud"] for p in params)  # type: ignore[index]
    versions = [a["model_version"] for a in answers]
    assert set(versions) <= {old, new}
    assert versions[-1] == new


def test_live_threshold_and_refused_reloads_keep_the_servers_serving(
    exported: Exported, nats_server: EmbeddedNats, images: Images, second_plan: str
) -> None:
    prefix = exported.prefixes["main"]
    cloud = server("cloud", exported, prefix, nats_server)
    edge = server("edge", exported, prefix, nats_server, "--threshold", "2")

    async def reloads() -> tuple[list[float], str, str]:
        async with await Messenger.connect(nats_server.url) as messenger:
            acks = await reload_pipeline(
                messenger, "default", "main", threshold=0.0, replicas={"cloud": 1, "edge": 1}
            )
            with pytest.raises(ReloadError, match="expected default/main/<plan-hash>/<set-id>"):
                await reload_pipeline(
                    messenger,
                    "default",
                    "main",
                    prefix=exported.prefixes["other"],
                    replicas={"cloud": 1},
                )
            # A set of this pipeline, but not one the servers were pinned to at start.
            with pytest.raises(ReloadError, match=r"is not pinned for this server"):
                await reload_pipeline(
                    messenger, "default", "main", prefix=second_plan, replicas={"cloud": 1}
                )
            malformed = await messenger.broadcast(
                reload_subject("default", "main", "edge"), b"{not json", expect=1, timeout=10
            )
            wrong_role = await messenger.broadcast(
                reload_subject("default", "main", "edge"),
                b'{"role": "cloud", "threshold": 0.5}',
                expect=1,
                timeout=10,
            )
        assert all(isinstance(r, RemoteError) for r in (*malformed, *wrong_role))
        return [a.threshold for a in acks], str(malformed[0]), str(wrong_role[0])

    with cloud, edge:
        thresholds, malformed, wrong_role = asyncio.run(reloads())
        # c_thr 0: the first edge exit answers everything, on the edge.
        params = infer(edge.started.url, images(2))["parameters"]
        assert params["location"] == ["edge", "edge"]  # type: ignore[index]
        assert params["exit_index"] == [0, 0]  # type: ignore[index]
    assert thresholds == [0.0, 0.0]
    assert "reload command" in malformed
    assert "reached the edge" in wrong_role


def test_reload_command_errors_are_one_line(run_cli: RunCli) -> None:
    result = run_cli("reload", "--pipeline", "main")
    assert_one_line_error(result, "give --prefix, --threshold, or both")
    result = run_cli(
        "reload", "--pipeline", "main", "--threshold", "0.5", "--nats-url", "nats://127.0.0.1:1"
    )
    assert_one_line_error(result, "cannot connect to NATS at nats://127.0.0.1:1")
