"""`inferedge operator`: its flags, and the Helm chart's exact command line against a cluster."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from inferedge.cli import cli
from inferedge.controller.settings import DEFAULT_PEERING
from tests.controller.cluster import wait_for
from tests.controller.conftest import Cluster
from tests.controller.test_restart import operator_process
from tests.storage.netfaults import free_port

HELM_ARGS = ["operator", "--all-namespaces", "--liveness", "http://0.0.0.0:8080/healthz"]


@pytest.fixture
def kopf_run(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record what `inferedge operator` asks kopf to run, instead of running it."""
    import kopf

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(kopf, "run", lambda **kwargs: calls.append(kwargs))
    return calls


def test_the_helm_command_line_runs_cluster_wide_with_auto_peering(
    kopf_run: list[dict[str, Any]],
) -> None:
    result = CliRunner().invoke(cli, HELM_ARGS)
    assert result.exit_code == 0, result.output
    (call,) = kopf_run
    assert call["clusterwide"] is True
    assert call["liveness_endpoint"] == "http://0.0.0.0:8080/healthz"
    assert call["peering_name"] is None  # kopf uses the peering object if it exists
    assert call["standalone"] is None
    assert call["memo"]["options"].auto_peering == DEFAULT_PEERING
    assert call["priority"] > 0  # random, so two replicas never tie


def test_explicit_peering_standalone_and_images(kopf_run: list[dict[str, Any]]) -> None:
    args = [
        "operator",
        "-n",
        "team-a",
        "-n",
        "team-b",
        "--peering",
        "prod",
        "--priority",
        "7",
        "--runtime-image",
        "r:1",
        "--edge-image",
        "e:1",
        "--runtime-image-tensorflow",
        "rt:1",
        "--tuning-interval",
        "12.5",
        "--clock-agent-dir",
        "/var/run/clocks",
    ]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert CliRunner().invoke(cli, ["operator", "-A", "--standalone"]).exit_code == 0
    peered, alone = kopf_run
    assert (peered["namespaces"], peered["peering_name"], peered["priority"]) == (
        ("team-a", "team-b"),
        "prod",
        7,
    )
    options = peered["memo"]["options"]
    assert (options.images.runtime, options.images.edge, options.auto_peering) == (
        "r:1",
        "e:1",
        None,
    )
    # The TensorFlow images: the one given, and the default for the other.
    assert options.images.runtime_tensorflow == "rt:1"
    assert options.images.edge_tensorflow.startswith("ghcr.io/inferedge/runtime-tensorflow:")
    assert (alone["standalone"], alone["priority"]) == (True, None)
    assert options.tuning_interval_s == 12.5
    assert options.clock_agent_dir == "/var/run/clocks"
    assert alone["memo"]["options"].tuning_interval_s == 30.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["operator"], "give --namespace NS (repeatable) or --all-namespaces"),
        (["operator", "-A", "-n", "x"], "give --namespace or --all-namespaces, not both"),
        (["operator", "-A", "--peering", "p", "--standalone"], "not both"),
        (["operator", "-A", "--tuning-interval", "0"], "--tuning-interval"),
        (
            ["operator", "-A", "--clock-agent-dir", "run/x"],
            "--clock-agent-dir: expected an absolute",
        ),
    ],
)
def test_bad_flags_are_one_line_usage_errors(
    args: list[str], message: str, kopf_run: list[dict[str, Any]]
) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output
    assert kopf_run == []


def test_the_helm_command_serves_liveness_against_a_cluster(
    cluster: Cluster, tmp_path: Path
) -> None:
    port = free_port()
    args = ["--all-namespaces", "--liveness", f"http://127.0.0.1:{port}/healthz"]
    with operator_process(cluster, tmp_path / "operator.log", args):

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for("the liveness endpoint", healthy, timeout=30)


def test_the_controller_loads_without_frameworks_numpy_or_the_runtime() -> None:
    # The operator image has kopf, kubernetes and minio, and none of these.
    blocked = [
        "torch",
        "tensorflow",
        "keras",
        "numpy",
        "sklearn",
        "PIL",
        "matplotlib",
        "nats",
        "prometheus_client",
        "rich",
        "inferedge.runtime",
        "inferedge.dnn",
        "inferedge.local",
    ]
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if any(name == b or name.startswith(b + '.') for b in {blocked!r}):\n"
        "            raise ImportError(f'{name} is not in the operator image')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import inferedge.controller.handlers\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
