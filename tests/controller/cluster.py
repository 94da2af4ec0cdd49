"""The emulated cluster for operator tests: the API server in a thread, a kubeconfig, a client.

The emulator runs on its own event loop in a background thread, so the operator (kopf's
KopfRunner, another thread) and the tests (plain synchronous code) reach it the way they would
reach a real API server: over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import kmock
import yaml

from tests.controller.emulator import ClusterEmulator

T = TypeVar("T")
GROUP_PATH = "/apis/inferedge.io/v1alpha1"


class ApiError(Exception):
    """A non-2xx answer."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class Api:
    """A tiny synchronous JSON client for tests (and the kubelet stand-in)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode(errors="replace")) from None
        return json.loads(payload) if payload else None

    def get(self, path: str) -> Any:
        """The object at `path`, or None on 404."""
        try:
            return self.call("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def items(self, path: str, labels: str = "") -> list[dict[str, Any]]:
        """The items of a list."""
        query = f"?labelSelector={labels}" if labels else ""
        return list(self.call("GET", path + query)["items"])

    def create(self, path: str, obj: dict[str, Any]) -> Any:
        return self.call("POST", path, obj)

    def merge(self, path: str, patch: dict[str, Any]) -> Any:
        return self.call("PATCH", path, patch, "application/merge-patch+json")

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)


def ns_path(kind: str, namespace: str = "default", name: str | None = None) -> str:
    """Paths of the resources the tests touch, by short kind."""
    bases = {
        "ipl": f"{GROUP_PATH}/namespaces/{namespace}/inferencepipelines",
        "dprof": f"{GROUP_PATH}/namespaces/{namespace}/deviceprofiles",
        "jobs": f"/apis/batch/v1/namespaces/{namespace}/jobs",
        "deployments": f"/apis/apps/v1/namespaces/{namespace}/deployments",
        "services": f"/api/v1/namespaces/{namespace}/services",
        "configmaps": f"/api/v1/namespaces/{namespace}/configmaps",
        "secrets": f"/api/v1/namespaces/{namespace}/secrets",
        "pods": f"/api/v1/namespaces/{namespace}/pods",
        "events": f"/api/v1/namespaces/{namespace}/events",
    }
    base = bases[kind]
    return f"{base}/{name}" if name else base


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)  # poll interval, not a wait for readiness
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@contextmanager
def running_emulator() -> Iterator[tuple[ClusterEmulator, str]]:
    """Start the emulator on a free port in a thread; yield it and its URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Event | None = None
    holder: dict[str, Any] = {}

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        emulator = ClusterEmulator()
        async with emulator, kmock.Server(emulator) as server:
            holder["emulator"], holder["url"] = emulator, str(server.url).rstrip("/")
            ready.set()
            await stop.wait()
            await emulator.shutdown()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the API emulator did not start")
    try:
        yield holder["emulator"], holder["url"]
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def write_kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig pointing at the emulator (no credentials: it accepts everyone)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
        "contexts": [
            {
                "name": "emulator",
                "context": {"cluster": "emulator", "user": "tester", "namespace": "default"},
            }
        ],
        "current-context": "emulator",
    }
    path.write_text(yaml.safe_dump(config))
    return path
