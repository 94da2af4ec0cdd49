"""`inferedge run -f`: the whole pipeline on one machine, served by real processes, measured.

One run of a small manifest (tests/local/conftest.py) checks the measured report against the
offline evaluation; a second is interrupted while it serves, and must leave no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.clitools import RunCli, assert_one_line_error
from tests.local.test_runner_prepare import small_manifest

REPO = Path(__file__).resolve().parents[2]
SERVE_LIMIT_S = 300


def test_run_replays_the_test_split_and_reports_measured_against_predicted(
    small_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, result = small_run
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Measured on the real servers" in result.stdout
    report = json.loads((out / "report" / "measured.json").read_text())
    calibrated = report["calibrated_threshold"]
    rows = {r["threshold"]: r for r in report["rows"]}
    assert set(rows) == {0.5, 1.0, calibrated}
    for row in rows.values():
        assert row["samples"] == 270
        assert row["degraded"] == 0
        # The served partitions are the evaluated model: one sample of slack for float noise.
        assert abs(row["accuracy"] - row["predicted_accuracy"]) <= 1 / 270 + 1e-9
        assert abs(row["offload_rate"] - row["predicted_offload_rate"]) <= 1 / 270 + 1e-9
        assert row["latency_p95_ms"] >= row["latency_p50_ms"] > 0
    # At c_thr 1 an exit must be certain: nearly everything pays the 40 ms link to the cloud.
    assert rows[1.0]["offload_rate"] > 0.9
    assert rows[1.0]["offload_bytes_per_request"] == pytest.approx(
        rows[1.0]["predicted_bytes_per_request"]
    )
    assert rows[1.0]["latency_p50_ms"] >= 40
    assert report["verdict"].startswith(f"At c_thr {calibrated:.2f}")
    # Both baselines ran the whole model through the same servers: the same answers, one
    # without a byte on the link, the other shipping every raw input (3x16x16 float32) over it.
    baselines = {b["name"]: b for b in report["baselines"]}
    assert set(baselines) == {"edge_only", "cloud_only"}
    edge_only, cloud_only = baselines["edge_only"], baselines["cloud_only"]
    assert edge_only["point"].endswith("/-/-")
    assert cloud_only["point"] == "0/-/-"
    for baseline in baselines.values():
        assert baseline["samples"] == 270
        assert baseline["degraded"] == 0
        assert baseline["predicted_latency_ms"] > 0
    assert edge_only["accuracy"] == pytest.approx(cloud_only["accuracy"], abs=1 / 270 + 1e-9)
    assert edge_only["offload_bytes_per_request"] == 0
    assert cloud_only["offload_bytes_per_request"] == 3 * 16 * 16 * 4
    assert cloud_only["latency_mean_ms"] >= 40  # every request crosses the 40 ms link
    assert "## Baselines, measured in the same run" in (out / "report" / "measured.md").read_text()
    for name in ("measured.md", "measured.png", "evaluation.json"):
        assert (out / "report" / name).stat().st_size > 0
    for role in ("edge", "cloud"):
        assert "serving" in (out / "logs" / f"{role}.log").read_text()
    # The example's edge tunes its (emulated) knobs: in servers of their own, after the replays.
    tuning = json.loads((out / "report" / "tuning.json").read_text())
    assert tuning["emulated"] is True
    replay = tuning["replay"]
    assert replay["sent"] == replay["answered"] + replay["refused"] > 0
    quiet, busy = tuning["steps"]
    assert quiet["windows"] > 0
    assert busy["windows"] > 0
    # the batches the edge ran follow the arrival rate up
    assert busy["served_batch"] > quiet["served_batch"]
    assert tuning["edge"]["windows"][0]["cost"] == pytest.approx(1.0)
    for name in ("tuning.md", "tuning.png"):
        assert (out / "report" / name).stat().st_size > 0


def _descendants(pid: int) -> set[int]:
    """Live (non-zombie) processes below `pid`, at any depth."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if state != "Z":
            parents[int(entry.name)] = int(ppid)
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if state[state.rindex(")") + 2] != "Z":
            alive.add(pid)
    return alive


def test_ctrl_c_while_serving_leaves_no_process(
    small_run: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    # The small run's backbone and one epoch of exits: the run gets to serving sooner.
    model = {
        "name": "small_resnet",
        "inputShape": [3, 16, 16],
        "weightsUri": str(small_run[0] / "backbone.pt"),
    }
    manifest = tmp_path / "given.yaml"
    manifest.write_text(
        small_manifest(
            model=model,
            exits={
                "placement": "pareto",
                "edge": 2,
                "cloud": 1,
                "head": {"preset": "sdn"},
                "training": {"epochs": 1},
            },
        )
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inferedge",
            "run",
            "-f",
            str(manifest),
            "-o",
            str(tmp_path / "run"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own session: Ctrl-C reaches the whole group, as in a shell
    )
    assert process.stdout is not None
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith("edge: serving"):
                break
        else:
            pytest.fail("".join(seen[-20:]))
        started = _descendants(process.pid)
        assert len(started) >= 3  # nats-server, cloud, edge
        os.killpg(process.pid, signal.SIGINT)
        rest = process.communicate(timeout=SERVE_LIMIT_S)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, "".join(seen[-5:]) + rest
    assert "Traceback" not in rest
    assert _alive(started) == set()


def test_run_names_a_missing_pipeline_in_one_line(
    small_manifest_file: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    result = run_cli("run", "-f", small_manifest_file, "-o", tmp_path, "--pipeline", "nope")
    assert_one_line_error(result, "no InferencePipeline 'nope'", "found: digits")
    result = run_cli("run", "-f", small_manifest_file, "--thresholds", "1.5")
    assert_one_line_error(result, "--thresholds", "numbers in [0, 1]")


@pytest.mark.parametrize(
    "case",
    [
        ("name", "os:getpid", "spec.model.name: String should match pattern"),
        ("name", "/tmp/model.pt2", "spec.model.name: String should match pattern"),
        ("name", "resnet1000", "name must be a zoo model of its framework"),
        ("uri", "s3://models/evil.pkl", "uri must be a .pt2 file for torch"),
    ],
)
def test_a_manifest_names_data_never_code(
    small_manifest_file: Path, tmp_path: Path, run_cli: RunCli, case: tuple[str, str, str]
) -> None:
    """Nothing a manifest names is imported or unpickled: code, paths and foreign formats are
    refused before any step runs, with the field named in one line."""
    field, value, fragment = case
    docs = list(yaml.safe_load_all(small_manifest_file.read_text()))
    docs[2]["spec"]["model"][field] = value
    evil = tmp_path / "evil.yaml"
    evil.write_text(yaml.safe_dump_all(docs))
    result = run_cli("run", "-f", evil, "-o", tmp_path / "out")
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "out").exists()
