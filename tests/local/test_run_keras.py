"""`inferedge run -f examples/digits-keras.yaml`: the Keras pipeline on one machine, served by
real processes over a real nats-server, and its reports in exactly the torch run's shape.

Both runs use their example manifest shortened the same way (fewer epochs and repeats, a
smaller test split, a faster emulated link), so the run is quick; its reports are compared with the
small torch run's (tests/local/conftest.py), whose small_resnet is the twin of the Keras model.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferedge.core.manifest import parse_manifest
from inferedge.storage import LocalStore
from inferedge.storage.artifacts import read_manifest
from tests.clitools import RunCli
from tests.factories import committed_set

ROOT = Path(__file__).resolve().parents[2]
TEST_FRACTION = 0.05  # 90 of digits' 1,797 samples are replayed per threshold


def shortened(example: str) -> str:
    """An example manifest with a short schedule."""
    docs = list(yaml.safe_load_all((ROOT / "examples" / example).read_text()))
    edge, cloud, pipeline = docs
    spec = pipeline["spec"]
    schedule = {"epochs": 3, "learningRate": 3e-3}
    spec["dataset"].update({"backboneTraining": schedule, "testFraction": TEST_FRACTION})
    spec["exits"]["training"] = schedule
    # Half the model's memory on the edge: both parts get steps and exits.
    spec["partitioning"] = {"strategy": "memory", "memoryFraction": 0.5}
    for device in (edge, cloud):
        device["spec"]["profiling"] = {"batchSizes": [1], "repeats": 3, "warmup": 1}
    edge["spec"]["emulation"]["slowdown"] = 2
    edge["spec"]["link"] = {"bandwidthMbps": 100, "rttMs": 5}
    return yaml.safe_dump_all(docs)


def _run(run_cli: RunCli, manifest: str, out: Path) -> Path:
    path = out.parent / f"{out.name}.yaml"
    path.write_text(manifest)
    # a short tuning phase: both frameworks' edges tune alike
    arrivals = "fixed:60ms@3s,fixed:20ms@3s"
    result = run_cli(
        "run", "-f", path, "-o", out, "--thresholds", "1", "--tuning-arrivals", arrivals
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (out / "stdout.txt").write_text(result.stdout)
    return out


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory: pytest.TempPathFactory, run_cli_module: RunCli) -> Path:
    return _run(
        run_cli_module, shortened("digits-keras.yaml"), tmp_path_factory.mktemp("keras") / "run"
    )


def test_the_keras_example_runs_end_to_end_on_tensorflow_partitions(keras_run: Path) -> None:
    out = keras_run
    for name in ("backbone.weights.h5", "exits.npz", "plan.json", "edge-profile.json"):
        assert (out / name).is_file(), name
    plan = json.loads((out / "plan.json").read_text())
    assert plan["model"]["framework"] == "tensorflow"
    prefix = committed_set(LocalStore(out / "store"), "default/digits-keras", plan["hash"])
    manifest = parse_manifest(read_manifest(LocalStore(out / "store"), prefix), "manifest")
    assert (manifest.framework, manifest.format) == ("tensorflow", "keras")
    assert {f.name.rsplit(".", 1)[1] for f in manifest.files} == {"keras"}

    report = json.loads((out / "report" / "measured.json").read_text())
    calibrated = report["calibrated_threshold"]
    rows = {r["threshold"]: r for r in report["rows"]}
    assert set(rows) == {1.0, calibrated}
    samples = round(1797 * TEST_FRACTION)
    for row in rows.values():
        assert row["samples"] == samples
        assert row["degraded"] == 0
        # The served Keras partitions are the evaluated model: one sample of slack for noise.
        assert abs(row["accuracy"] - row["predicted_accuracy"]) <= 1 / samples + 1e-9
        assert abs(row["offload_rate"] - row["predicted_offload_rate"]) <= 1 / samples + 1e-9
        assert row["latency_p95_ms"] >= row["latency_p50_ms"] > 0
    # At c_thr 1 an exit must be certain: nearly everything goes to the cloud.
    assert rows[1.0]["offload_rate"] > 0.9
    # A trained backbone on real digits, not chance: 3 epochs reach 0.75 to 0.85 depending on
    # the CPU, so the floor is 4x chance.
    assert rows[1.0]["accuracy"] > 0.4
    for role in ("edge", "cloud"):
        assert "serving" in (out / "logs" / f"{role}.log").read_text()
    # The baselines load and run the whole chain of Keras files on either side.
    baselines = {b["name"]: b for b in report["baselines"]}
    assert set(baselines) == {"edge_only", "cloud_only"}
    assert baselines["edge_only"]["accuracy"] == pytest.approx(
        baselines["cloud_only"]["accuracy"], abs=1 / samples + 1e-9
    )
    assert baselines["cloud_only"]["offload_bytes_per_request"] > 0
    assert baselines["edge_only"]["offload_bytes_per_request"] == 0


def _shape(value: Any) -> Any:
    """The keys of a JSON document at every depth (lists by their first element)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__ if value is None else "value"


def _headers(markdown: str) -> list[str]:
    """Every markdown table's header row and every heading, with names and numbers masked."""
    lines = markdown.splitlines()
    kept = [
        line
        for i, line in enumerate(lines)
        if line.startswith("#") or (line.startswith("|") and i + 1 < len(lines)
                                    and lines[i + 1].startswith("|---"))
    ]  # fmt: skip
    return [re.sub(r"digits(-keras)?|[0-9a-f]{16}|\d+(\.\d+)?", "#", line) for line in kept]


def test_keras_and_torch_reports_have_the_same_columns(
    keras_run: Path, small_run: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    torch_run, result = small_run
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("measured.json", "evaluation.json"):
        keras_doc = json.loads((keras_run / "report" / name).read_text())
        torch_doc = json.loads((torch_run / "report" / name).read_text())
        assert _shape(keras_doc) == _shape(torch_doc), name
    for name in ("measured.md", "report.md"):
        keras_md = (keras_run / "report" / name).read_text()
        torch_md = (torch_run / "report" / name).read_text()
        assert _headers(keras_md) == _headers(torch_md), name
        assert _headers(keras_md), name
    assert sorted(p.name for p in (keras_run / "report").iterdir()) == sorted(
        p.name for p in (torch_run / "report").iterdir()
    )
    # The terminal table: the same column titles.
    keras_out = (keras_run / "stdout.txt").read_text()
    torch_out = result.stdout
    title = "┃  c_thr ┃"
    assert title in keras_out
    (keras_header,) = [line for line in keras_out.splitlines() if line.startswith(title)]
    (torch_header,) = [line for line in torch_out.splitlines() if line.startswith(title)]
    assert keras_header.split() == torch_header.split()
