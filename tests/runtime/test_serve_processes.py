"""`inferedge serve edge` and `inferedge serve cloud` as real processes over a real nats-server."""

from __future__ import annotations

import json
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from inferedge.transport import EmbeddedNats
from tests.runtime.conftest import Exported

REPO = Path(__file__).resolve().parents[2]
START_LIMIT_S = 60.0


def start(role: str, store: Path, prefix: str, nats_url: str, *extra: str) -> tuple[
    subprocess.Popen[str], str
]:  # fmt: skip
    """Start `inferedge serve ROLE` and wait (bounded) for its 'serving ...' line."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inferedge",
            "serve",
            role,
            "--store",
            str(store),
            "--prefix",
            prefix,
            "--nats-url",
            nats_url,
            "--port",
            "0",
            "--cache-dir",
            str(store.parent / role),
            *extra,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        if selector.select(timeout=deadline - time.monotonic()):
            line = proc.stdout.readline()
            if line.startswith("serving"):
                return proc, line
            if not line:
                break
    proc.kill()
    pytest.fail(
        f"inferedge serve {role} did not start: {proc.stderr.read() if proc.stderr else ''}"
    )


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def infer(port: int, x: np.ndarray) -> dict[str, object]:
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}]}  # fmt: skip
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/main/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.fixture
def nats_server() -> Iterator[EmbeddedNats]:
    with EmbeddedNats() as server:
        yield server


def test_edge_and_cloud_processes_answer_and_degrade(
    exported: Exported, nats_server: EmbeddedNats, images: Callable[[int], np.ndarray]
) -> None:
    store, prefix = exported.store.root, exported.prefixes["main"]
    cloud, _ = start("cloud", store, prefix, nats_server.url)
    edge, line = start("edge", store, prefix, nats_server.url, "--threshold", "2")
    try:
        port = int(re.search(r":(\d+) ", line).group(1))  # type: ignore[union-attr]
        x = images(3)
        reply = infer(port, x)
        params = reply["parameters"]
        assert params["location"] == ["cloud"] * 3  # type: ignore[index]
        assert params["degraded"] == [False] * 3  # type: ignore[index]
        outputs = {o["name"]: o["data"] for o in reply["outputs"]}  # type: ignore[attr-defined]
        assert outputs["prediction"] == exported.predict(x)
        assert stop(cloud) == 0
        degraded = infer(port, images(1))["parameters"]
        assert degraded["degraded"] == [True]  # type: ignore[index]
        assert degraded["location"] == ["edge"]  # type: ignore[index]
    finally:
        for proc in (cloud, edge):
            if proc.poll() is None:
                assert stop(proc) == 0
