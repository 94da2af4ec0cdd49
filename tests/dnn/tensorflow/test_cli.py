"""The step-by-step CLI with `--framework tensorflow`: train-backbone -> profile (edge, cloud) ->
cuts -> plan -> train-exits -> evaluate -> export -> verify, then the one-line refusals.

The successful steps run in this process (TensorFlow is imported once for the session); the
refusals run the real command in a subprocess, where the one-line error and exit code are seen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from inferedge.cli import cli
from inferedge.core.manifest import parse_manifest
from inferedge.core.plan import parse_plan
from inferedge.core.profile import parse_profile
from inferedge.dnn.frameworks import (
    WEIGHTS_SUFFIXES,
    get_workflow,
    quiet_native_import,
    weights_framework,
)
from inferedge.storage import LocalStore
from inferedge.storage.artifacts import read_manifest
from tests.clitools import RunCli, assert_one_line_error
from tests.factories import committed_set

MODEL = "small_resnet"
SHAPE = "3,16,16"
TF = ["--framework", "tensorflow"]
FAST = ["--repeats", "2", "--warmup", "1"]


def invoke(*args: object) -> str:
    """Run `inferedge ARGS...` in this process; returns stdout, failing on a non-zero exit."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keras-flow")
    trained = invoke(
        "train-backbone", MODEL, *TF, "--input-shape", SHAPE, "--epochs", "3", "--lr", "3e-3",
        "-o", d / "backbone.weights.h5",
    )  # fmt: skip
    assert "best epoch" in trained
    for role, slowdown in (("cloud", "1"), ("edge", "8")):
        invoke(
            "profile", MODEL, *TF, "--input-shape", SHAPE, *FAST, "--device-name", role,
            "--emulate-slowdown", slowdown, "-o", d / f"{role}.json",
        )  # fmt: skip
    invoke(
        "plan", "--edge", d / "edge.json", "--cloud", d / "cloud.json", "--strategy", "memory",
        "--memory-fraction", "0.5", "--placement", "pareto", "--edge-exits", "2",
        "--cloud-exits", "1", "-o", d / "plan.json",
    )  # fmt: skip
    trained_exits = invoke(
        "train-exits", "--plan", d / "plan.json", "--weights", d / "backbone.weights.h5",
        "--head", "sdn", "--epochs", "3", "--lr", "3e-3", "-o", d / "exits.npz",
    )  # fmt: skip
    (d / "train-exits.txt").write_text(trained_exits)
    common = ["--plan", d / "plan.json", "--weights", d / "backbone.weights.h5"]
    invoke(
        "evaluate", *common, "--exits", d / "exits.npz", "--edge", d / "edge.json",
        "--cloud", d / "cloud.json", "--report-dir", d / "report",
    )  # fmt: skip
    exported = invoke(
        "export", *common, "--exits", d / "exits.npz", "--evaluation", d / "report",
        "--store", d / "store", "--pipeline", "digits",
    )  # fmt: skip
    assert "published" in exported
    return d


def test_profiles_are_keras_profiles_with_the_plan_made_for_them(flow: Path) -> None:
    edge = parse_profile((flow / "edge.json").read_text(), "edge")
    assert edge.model.framework == "tensorflow"
    assert edge.model.tracing == "keras"
    assert edge.device.emulated_slowdown == 8
    plan = json.loads((flow / "plan.json").read_text())
    assert plan["model"]["framework"] == "tensorflow"
    assert 0 < plan["split"] < plan["final_cut"]


def test_train_exits_reports_each_exit_and_writes_the_heads(flow: Path) -> None:
    plan = json.loads((flow / "plan.json").read_text())
    output = (flow / "train-exits.txt").read_text().splitlines()
    lines = [line for line in output if "exit at" in line]
    assert [int(line.split("cut")[1].split(":")[0]) for line in lines] == [
        e["cut_index"] for e in plan["exits"]
    ]
    parsed = parse_plan((flow / "plan.json").read_text(), "plan.json")
    exits = get_workflow("tensorflow").load_exits(flow / "exits.npz", parsed)
    assert [e.cut_index for e in exits] == [e["cut_index"] for e in plan["exits"]]


def test_evaluate_measures_the_keras_exits(flow: Path) -> None:
    evaluation = json.loads((flow / "report" / "evaluation.json").read_text())
    test = evaluation["test"]
    assert len(test["exit_cuts"]) == 4  # three exits and the final classifier
    # 3 epochs: 0.75 to 0.84 depending on the CPU; 4x chance still rules out a broken training.
    assert test["split_no_exits"]["accuracy"] > 0.4
    assert "⟵ chosen" in (flow / "report" / "report.md").read_text()


def test_export_publishes_keras_files_that_verify_loads(flow: Path) -> None:
    plan_hash = json.loads((flow / "plan.json").read_text())["hash"]
    prefix = committed_set(LocalStore(flow / "store"), "default/digits", plan_hash)
    manifest = parse_manifest(read_manifest(LocalStore(flow / "store"), prefix), "manifest")
    assert (manifest.framework, manifest.format) == ("tensorflow", "keras")
    assert all(f.name.endswith(".keras") for f in manifest.files)
    assert manifest.calibration is not None
    verified = invoke("verify", "--store", flow / "store", "--prefix", prefix)
    assert f"ok: {len(manifest.files)} files verified for plan {plan_hash} (tensorflow" in verified
    assert "edge: 2 segments, 2 exits loaded" in verified


def test_cuts_and_zoo_know_the_keras_zoo() -> None:
    cuts = invoke("cuts", MODEL, *TF, "--input-shape", SHAPE)
    assert "small_resnet [3x16x16]: cut points" in cuts
    listed = invoke("zoo", *TF).split()
    assert {"small_resnet", "resnet50", "mobilenet_v2", "inception_v3"} <= set(listed)


def test_weights_suffixes_name_each_workflows_files() -> None:
    for framework, suffix in WEIGHTS_SUFFIXES.items():
        assert get_workflow(framework).weights_suffix == suffix
        assert weights_framework(Path(f"model{suffix}")) == framework
    assert weights_framework(Path("model.h5")) is None


def test_refusals_are_one_line(flow: Path, run_cli: RunCli, tmp_path: Path) -> None:
    plan = str(flow / "plan.json")
    result = run_cli("render-exits", "--plan", plan)
    assert_one_line_error(result, plan, "torch plans only", "tensorflow model")
    torch_weights = tmp_path / "backbone.pt"
    torch_weights.write_bytes(b"")
    result = run_cli(
        "train-exits", "--plan", plan, "--weights", str(torch_weights), "-o", str(tmp_path / "x")
    )
    assert_one_line_error(result, "--weights", "is a torch weights file", "tensorflow model")
    result = run_cli("profile", MODEL, *TF, "--device-name", "e", "-o", str(tmp_path / "p.json"))
    assert_one_line_error(result, "--input-shape", "required for tensorflow models")
    result = run_cli("profile", MODEL, "--framework", "jax", "-o", str(tmp_path / "p.json"))
    assert_one_line_error(result, "--framework", "'torch'", "'tensorflow'")
    # Past TensorFlow's import, whose native start-up lines must not reach stderr.
    result = run_cli(
        "train-exits", "--plan", plan, "--weights", str(flow / "backbone.weights.h5"),
        "--dataset", str(tmp_path / "none.npz"), "-o", str(tmp_path / "x.npz"),
    )  # fmt: skip
    assert_one_line_error(result, "none.npz")


def test_native_import_noise_is_held_back_and_the_rest_passed_on(
    capfd: pytest.CaptureFixture[str],
) -> None:
    noise = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"I0000 00:00:1795360395.038156   22731 port.cc:153] oneDNN custom operations are on.\n"
    )
    with quiet_native_import():
        os.write(2, noise + b"E0000 00:00:1.0   7 x.cc:1] a real error\n")
        print("python-level warning", file=sys.stderr)
    lines = capfd.readouterr().err.splitlines()
    assert sorted(lines) == ["E0000 00:00:1.0   7 x.cc:1] a real error", "python-level warning"]


def test_a_tensorflow_only_cli_path_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "import inferedge.cli, inferedge.local.runner, inferedge.steps.evaluation\n"
        "import inferedge.steps.export, inferedge.cli.cluster_commands\n"
        "from inferedge.dnn.frameworks import get_workflow\n"
        "get_workflow('tensorflow')\n"
        "assert 'torch' not in sys.modules, 'a Keras pipeline must not need torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
