"""Storage fixtures: a real moto S3 server for the session, and every store kind per test."""

from __future__ import annotations

import http.client
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferedge.storage import ArtifactStore, LocalStore
from inferedge.storage.s3 import S3Store
from inferedge.storage.s3config import S3Credentials
from tests.storage.netfaults import free_port

REPO = Path(__file__).resolve().parents[2]
MOTO_ENV = "INFEREDGE_TEST_MOTO_SERVER"
MOTO_CREDENTIALS = S3Credentials("testing", "testing")
_STARTUP_LIMIT_S = 60.0


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a moto S3 server on loopback, started once for the session."""
    executable = Path(os.environ.get(MOTO_ENV) or REPO / ".venv-moto" / "bin" / "moto_server")
    if not executable.is_file():
        pytest.fail(
            f"moto_server not found at {executable}: run `make test` (it builds .venv-moto), "
            f"or set {MOTO_ENV} to a moto_server executable"
        )
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_serving(server, port, log_path)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_serving(server: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + _STARTUP_LIMIT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"moto_server exited with {server.returncode}: {log_path.read_text()}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)  # poll interval, not a wait for readiness
        finally:
            connection.close()
    pytest.fail(f"moto_server did not answer on port {port} within {_STARTUP_LIMIT_S:.0f} s")


def make_s3_store(
    endpoint: str, bucket: str | None = None, prefix: str = "", max_attempts: int = 5
) -> S3Store:
    """An S3Store on `endpoint` (moto, or a proxy in front of it) with fast retries."""
    return S3Store(
        bucket or f"test-{uuid.uuid4().hex[:16]}",
        prefix,
        endpoint=endpoint,
        credentials=MOTO_CREDENTIALS,
        secure=False,
        region="us-east-1",
        max_attempts=max_attempts,
        backoff_s=0.01,
        timeout_s=10.0,
    )


@pytest.fixture
def s3_store(moto_endpoint: str) -> S3Store:
    """An S3Store on a fresh, empty bucket under a store prefix."""
    store = make_s3_store(moto_endpoint, prefix="stores/contract")
    store.ensure_bucket()
    return store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """Each store kind in turn, empty: the contract suite runs against all of them."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    s3: S3Store = request.getfixturevalue("s3_store")
    return s3
