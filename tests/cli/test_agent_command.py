"""`inferedge agent` as a real process on a fake sysfs tree: help, bad flags, pinning a clock for
a connected pipeline, and the defaults back after SIGTERM."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.clitools import RunCli, assert_one_line_error

REPO = Path(__file__).resolve().parents[2]
TABLE_KHZ = (102000, 307200, 614400, 921600, 1224000, 1428000)
DEFAULT_MIN, DEFAULT_MAX = 102000, 1428000
START_LIMIT_S = 60.0


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    """A fake root with one cpufreq policy of four cores, as on a Jetson Nano."""
    root = tmp_path / "root"
    policy = root / "sys/devices/system/cpu/cpufreq/policy0"
    policy.mkdir(parents=True)
    files = {
        "scaling_available_frequencies": " ".join(map(str, TABLE_KHZ)) + " ",
        "scaling_min_freq": str(DEFAULT_MIN),
        "scaling_max_freq": str(DEFAULT_MAX),
        "related_cpus": "0 1 2 3",
    }
    for name, text in files.items():
        (policy / name).write_text(text + "\n")
    return root


def limits(root: Path) -> tuple[int, int]:
    """The policy's (scaling_min_freq, scaling_max_freq) in kHz."""
    policy = root / "sys/devices/system/cpu/cpufreq/policy0"
    return (int((policy / "scaling_min_freq").read_text()),
            int((policy / "scaling_max_freq").read_text()))  # fmt: skip


@contextmanager
def agent_process(
    sysfs: Path, sock: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The agent started on `sysfs`, and the line it announced once it listens."""
    args = [sys.executable, "-m", "inferedge", "agent", "--sysfs-root", str(sysfs),
            "--socket", str(sock), "--allowed-uid", str(os.getuid())]  # fmt: skip
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_LIMIT_S)
        announced = process.stdout.readline() if ready else ""
        if not announced:
            process.kill()
            pytest.fail(f"the agent did not start: {process.communicate()[1]}")
        yield process, announced
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def ask(connection: socket.socket, request: dict[str, Any]) -> dict[str, Any]:
    """One request line on an open connection; the decoded reply line."""
    connection.sendall(json.dumps(request).encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = connection.recv(4096)
        assert chunk, "the agent closed the connection"
        reply += chunk
    answer: dict[str, Any] = json.loads(reply)
    return answer


def test_help_explains_the_agent(run_cli: RunCli) -> None:
    result = run_cli("agent", "--help")
    assert result.returncode == 0, result.stderr
    for needed in ("SIGTERM", "default clocks back", "--allowed-uid", "--cpu-max-khz",
                   "--lease-s", "INFEREDGE_AGENT_GPU_MIN_KHZ", "clockAgent.enabled"):  # fmt: skip
        assert needed in result.stdout, needed
    assert "agent" in run_cli("--help").stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--cpu-min-khz", "0"], "--cpu-min-khz"),
        (["--gpu-max-khz", "fast"], "--gpu-max-khz"),
        (["--cpu-min-khz", "900", "--cpu-max-khz", "800"], "900 is above --cpu-max-khz 800"),
        (["--lease-s", "nan"], "--lease-s"),
        (["--allowed-uid", "-1"], "--allowed-uid"),
        (["--cpu-khz", "5"], "--cpu-khz"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    run_cli: RunCli, sysfs: Path, args: list[str], fragment: str
) -> None:
    result = run_cli("agent", "--sysfs-root", str(sysfs), *args)
    assert_one_line_error(result, fragment)


def test_bounds_that_leave_no_step_exit_2_with_one_line(
    run_cli: RunCli, sysfs: Path, tmp_path: Path
) -> None:
    result = run_cli("agent", "--sysfs-root", str(sysfs), "--socket", str(tmp_path / "s.sock"),
                     "--cpu-min-khz", "1300000", "--cpu-max-khz", "1400000")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --cpu-min-khz/")
    assert "Traceback" not in result.stderr


def test_the_agent_pins_for_a_connected_pipeline_and_restores_on_sigterm(
    sysfs: Path, tmp_path: Path
) -> None:
    sock = tmp_path / "clocks.sock"
    env = {**os.environ, "INFEREDGE_AGENT_CPU_MAX_KHZ": "1000000"}
    with agent_process(sysfs, sock, env) as (process, announced):
        assert "cpu 102000..921600 kHz (4 steps)" in announced
        assert "gpu none" in announced
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(str(sock))
            reply = ask(connection, {"pipeline": "default/digits", "cpu_khz": 1_300_000})
            assert reply["granted"] == {"cpu": 921600, "gpu": None}
            assert reply["clamped"] is True
            assert limits(sysfs) == (921600, 921600)
            process.send_signal(signal.SIGTERM)  # with the wish still held
            _, stderr = process.communicate(timeout=START_LIMIT_S)
    assert process.returncode == 0, stderr
    assert limits(sysfs) == (DEFAULT_MIN, DEFAULT_MAX)
    assert not sock.exists()
    assert "clocks now cpu 921600 kHz" in stderr


def test_a_restore_that_fails_at_exit_is_one_line_and_a_nonzero_exit(
    sysfs: Path, tmp_path: Path
) -> None:
    sock = tmp_path / "clocks.sock"
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with agent_process(sysfs, sock) as (process, _), connection:
        connection.connect(str(sock))
        assert ask(connection, {"pipeline": "ns/a", "cpu_khz": 307200})["clocks"]["cpu"]
        # Tests run as root, whom file modes do not stop: a directory refuses the write.
        min_freq = sysfs / "sys/devices/system/cpu/cpufreq/policy0/scaling_min_freq"
        min_freq.unlink()
        min_freq.mkdir()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=START_LIMIT_S)
    assert process.returncode == 2
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: restore failed on 1 domain(s): policy0: cannot write")
    assert "Traceback" not in stderr


def test_an_agent_killed_with_clocks_pinned_is_undone_by_the_next_one(
    sysfs: Path, tmp_path: Path
) -> None:
    sock = tmp_path / "clocks.sock"
    record = tmp_path / "clock-defaults.json"
    with agent_process(sysfs, sock) as (process, _), socket.socket(socket.AF_UNIX) as connection:
        assert json.loads(record.read_text())["domains"]["policy0"] == {
            "min_khz": DEFAULT_MIN, "max_khz": DEFAULT_MAX,
        }  # fmt: skip
        connection.connect(str(sock))
        ask(connection, {"pipeline": "ns/a", "cpu_khz": 307200})
        assert limits(sysfs) == (307200, 307200)
        process.kill()  # SIGKILL: no chance to restore
        process.wait()
    assert limits(sysfs) == (307200, 307200)
    assert record.exists()
    with agent_process(sysfs, sock) as (process, _):
        # it found the policy pinned at 307200 but put the first agent's defaults back
        assert limits(sysfs) == (DEFAULT_MIN, DEFAULT_MAX)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=START_LIMIT_S)
    assert process.returncode == 0, stderr
    assert "an earlier agent of this boot left the clocks pinned" in stderr
    assert not record.exists()  # a clean stop: nothing for a later agent to undo
