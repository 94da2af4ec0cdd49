"""Shared fixtures: running the real `inferedge` command in a subprocess."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferedge.core.profile import dump_profile
from inferedge.core.synthetic import synthetic_profile
from tests.clitools import RunCli
from tests.storage.netfaults import free_port

REPO = Path(__file__).resolve().parents[1]
MOTO_ENV = "INFEREDGE_TEST_MOTO_SERVER"
_STARTUP_LIMIT_S = 60.0


def run_inferedge(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m inferedge ARGS...` to its end and return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "inferedge", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
        cwd=REPO,  # user models such as tests.models:small_resnet import from here
    )


@pytest.fixture
def run_cli() -> RunCli:
    """Run `python -m inferedge ARGS...` and return the completed process (text mode)."""
    return run_inferedge


@pytest.fixture(scope="module")
def run_cli_module() -> RunCli:
    """`run_cli` for module-scoped fixtures that run a workflow once."""
    return run_inferedge


@pytest.fixture
def profile_pair(tmp_path: Path) -> tuple[Path, Path]:
    """An edge and a cloud profile of one synthetic 50-cut model, written as JSON files."""
    edge = tmp_path / "edge.json"
    cloud = tmp_path / "cloud.json"
    edge.write_text(dump_profile(synthetic_profile(50, ms_per_gflop=60, device_name="edge")))
    cloud.write_text(dump_profile(synthetic_profile(50, ms_per_gflop=6, device_name="cloud")))
    return edge, cloud


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
