"""The README's exit workflow, command by command, on real digits, into both real stores.

train-backbone -> profile (edge, cloud) -> plan (linear, pareto) -> train-exits -> evaluate ->
report -> export (local directory and the S3 server) -> verify. Then the ways it must refuse:
a corrupted artifact, exits of another plan, a head that does not fit, a bad dataset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inferedge.core.manifest import parse_manifest
from inferedge.storage.artifacts import is_committed, read_manifest
from inferedge.storage.local import LocalStore
from tests.clitools import RunCli, assert_one_line_error
from tests.factories import committed_set
from tests.storage.conftest import make_s3_store

MODEL = "tests.models:small_resnet"
SHAPE = "3,16,16"
BUCKET = "inferedge-artifacts"
REPO = Path(__file__).resolve().parents[2]


def ok(result: object) -> str:
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    return result.stdout  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flow")


@pytest.fixture(scope="module")
def s3_env(moto_endpoint: str) -> dict[str, str]:
    make_s3_store(moto_endpoint, bucket=BUCKET).ensure_bucket()
    return {
        **os.environ,
        "INFEREDGE_S3_ENDPOINT": f"http://{moto_endpoint}",
        "INFEREDGE_S3_ACCESS_KEY": "testing",
        "INFEREDGE_S3_SECRET_KEY": "testing",
    }


@pytest.fixture(scope="module")
def flow(workdir: Path, s3_env: dict[str, str]) -> Path:
    """Run examples/exits-workflow.sh once for the module, on a small model; return its output."""
    env = {
        **s3_env,
        "MODEL": MODEL,
        "INPUT_SHAPE": SHAPE,
        "EPOCHS": "6",
        "EXIT_EPOCHS": "8",
        "STRATEGY": "memory",
        "INFEREDGE": f"{sys.executable} -m inferedge",
        "S3_STORE": f"s3://{BUCKET}",
    }
    done = subprocess.run(
        ["bash", str(REPO / "examples" / "exits-workflow.sh"), str(workdir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("files verified") == 2  # the local store and the S3 server
    return workdir


def test_evaluation_reports_every_threshold_and_baseline(flow: Path) -> None:
    for placement in ("linear", "pareto"):
        report = flow / f"report-{placement}"
        evaluation = json.loads((report / "evaluation.json").read_text())
        test = evaluation["test"]
        assert [r["threshold"] for r in test["rows"]] == pytest.approx(
            [0.30 + 0.05 * i for i in range(13)]
        )
        assert len(test["exit_cuts"]) == 4  # three exits and the final classifier
        for baseline in ("edge_only", "cloud_only", "split_no_exits", "oracle"):
            assert 0.0 <= test[baseline]["accuracy"] <= 1.0
        assert test["oracle"]["accuracy"] >= max(r["accuracy"] for r in test["rows"])
        assert test["edge_only"]["offload_rate"] == 0.0
        assert test["cloud_only"]["offload_rate"] == 1.0
        # a trained backbone on real digits, not chance
        assert test["split_no_exits"]["accuracy"] > 0.8
        assert evaluation["calibration"]["threshold"] in [r["threshold"] for r in test["rows"]]
        markdown = (report / "report.md").read_text()
        assert "| edge-only |" in markdown
        assert "⟵ chosen" in markdown
        for png in ("accuracy_vs_latency.png", "accuracy_vs_cost.png"):
            assert (report / png).read_bytes()[:4] == b"\x89PNG"


def test_report_compares_placements(flow: Path, run_cli_module: RunCli) -> None:
    out = ok(
        run_cli_module(
            "report",
            str(flow / "report-linear"),
            str(flow / "report-pareto"),
            "-o",
            str(flow / "compare"),
        )
    )
    table = (flow / "compare" / "comparison.md").read_text()
    assert "| linear |" in table
    assert "| pareto |" in table
    assert table in out


def test_export_committed_to_local_and_s3(
    flow: Path, run_cli_module: RunCli, moto_endpoint: str
) -> None:
    d = flow
    plan_hash = json.loads((d / "plan-pareto.json").read_text())["hash"]
    local = LocalStore(d / "store")
    s3 = make_s3_store(moto_endpoint, bucket=BUCKET)
    prefix = committed_set(local, "default/digits", plan_hash)
    for store in (local, s3):
        assert is_committed(store, prefix)
        manifest = parse_manifest(read_manifest(store, prefix), "manifest")
        assert manifest.plan.hash == plan_hash
        assert manifest.calibration is not None
        heads = {s.end for s in (*manifest.edge, *manifest.cloud) if s.head}
        assert heads == {e.cut_index for e in manifest.plan.exits}
    # A committed set is immutable and named by what decides its bytes: exporting the same
    # files again keeps it as it is.
    export = (
        *("export", "--plan", str(d / "plan-pareto.json"), "--weights", str(d / "backbone.pt")),
        *("--store", str(d / "store"), "--pipeline", "digits", "--evaluation"),
        str(d / "report-pareto"),
    )
    manifest_bytes = read_manifest(local, prefix)
    again = ok(run_cli_module(*export, "--exits", str(d / "exits-pareto.pt")))
    assert "already published (the same set)" in again
    assert prefix in again
    assert read_manifest(local, prefix) == manifest_bytes


def test_a_corrupted_artifact_is_refused(flow: Path, run_cli_module: RunCli) -> None:
    d = flow
    plan_hash = json.loads((d / "plan-linear.json").read_text())["hash"]
    store = d / "corrupt-store"
    ok(
        run_cli_module(
            "export",
            "--plan",
            str(d / "plan-linear.json"),
            "--weights",
            str(d / "backbone.pt"),
            "--exits",
            str(d / "exits-linear.pt"),
            "--store",
            str(store),
            "--pipeline",
            "digits",
        )
    )
    prefix = committed_set(LocalStore(store), "default/digits", plan_hash)
    segment = next((store / prefix / "cloud").glob("segment_*.pt2"))
    data = bytearray(segment.read_bytes())
    data[100] ^= 0xFF
    segment.write_bytes(bytes(data))
    result = run_cli_module("verify", "--store", str(store), "--prefix", prefix)
    assert_one_line_error(result, "sha256 mismatch", segment.name)


def test_exits_of_another_plan_are_refused(flow: Path, run_cli_module: RunCli) -> None:
    d = flow
    result = run_cli_module(
        "evaluate",
        "--plan",
        str(d / "plan-linear.json"),
        "--edge",
        str(d / "edge.json"),
        "--cloud",
        str(d / "cloud.json"),
        "--weights",
        str(d / "backbone.pt"),
        "--exits",
        str(d / "exits-pareto.pt"),
        "--report-dir",
        str(d / "wrong"),
    )
    assert_one_line_error(result, "exits-pareto.pt: trained for plan")


def test_a_head_that_does_not_fit_names_exit_and_layer(flow: Path, run_cli_module: RunCli) -> None:
    spec = flow / "head.json"
    spec.write_text(
        json.dumps(
            {
                "layers": [
                    {"type": "maxpool", "kernel_size": 40},
                    {"type": "flatten"},
                    {"type": "linear"},
                ]
            }
        )
    )
    result = run_cli_module(
        "train-exits",
        "--plan",
        str(flow / "plan-linear.json"),
        "--weights",
        str(flow / "backbone.pt"),
        "--head-spec",
        str(spec),
        "-o",
        str(flow / "never.pt"),
    )
    assert_one_line_error(result, "exit at cut", "layer 0 (maxpool) kernel 40")
    assert not (flow / "never.pt").exists()


def test_a_dataset_with_mismatched_labels_is_refused(
    flow: Path, run_cli_module: RunCli, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((10, 3, 16, 16), np.float32), y=np.zeros(9, np.int64))
    result = run_cli_module(
        "train-backbone",
        MODEL,
        "--input-shape",
        SHAPE,
        "--dataset",
        str(bad),
        "-o",
        str(tmp_path / "b.pt"),
    )
    assert_one_line_error(result, "bad.npz", "10", "9")


def test_deadline_planning_uses_measured_exit_accuracy(flow: Path, run_cli_module: RunCli) -> None:
    d = flow
    evaluation = json.loads((d / "report-linear" / "evaluation.json").read_text())
    measured = {int(k): v for k, v in evaluation["calibration"]["exit_accuracy"].items()}
    out = ok(run_cli_module(
        "plan", "--edge", str(d / "edge.json"), "--cloud", str(d / "cloud.json"), "--strategy",
        "deadline", "--deadline-ms", "100000", "--exit-accuracy-from", str(d / "report-linear"),
        "--json",
    ))  # fmt: skip
    plan = json.loads(out)
    # with no real deadline, Edgent picks the most accurate choice: the best measured accuracy
    assert plan["estimated_accuracy"] == pytest.approx(max(measured.values()))
    assert plan["request"]["exit_accuracy"] == {
        str(k): v for k, v in measured.items() if k != plan["model"]["num_cuts"]
    }
