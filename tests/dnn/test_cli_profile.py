"""`inferedge profile`, `cuts` and `zoo` in a subprocess, then `plan` on what profile wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inferedge.core.profile import parse_profile
from tests.clitools import RunCli, assert_one_line_error

FAST = ["--repeats", "2", "--warmup", "1"]


def test_profile_then_plan_on_a_zoo_model(run_cli: RunCli, tmp_path: Path) -> None:
    edge, cloud = tmp_path / "edge.json", tmp_path / "cloud.json"
    common = ["resnet18", "--input-shape", "3,32,32", *FAST, "--batch-sizes", "1,2"]
    done = run_cli("profile", *common, "--device-name", "cloud", "-o", str(cloud))
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    done = run_cli(
        "profile", *common, "--device-name", "edge", "--emulate-slowdown", "5",
        "--memory-mib", "512", "-o", str(edge),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    edge_profile = parse_profile(edge.read_text(), "edge")
    assert edge_profile.device.emulated_slowdown == 5
    assert edge_profile.device.memory_bytes == 512 * 1024 * 1024
    assert edge_profile.model.input_shape == (3, 32, 32)
    assert edge_profile.batch_sizes == (1, 2)

    for strategy in ("latency", "memory", "min-latency"):
        for placement in ("linear", "pareto"):
            planned = run_cli(
                "plan", "--edge", str(edge), "--cloud", str(cloud), "--strategy", strategy,
                "--placement", placement, "--edge-exits", "2", "--cloud-exits", "2", "--json",
                "--memory-fraction", "0.9",
            )  # fmt: skip
            if strategy == "latency" and planned.returncode == 2:
                # Feasible or not depends on this machine's timings (a busy core can make the
                # edge's first cut slower than the cloud's whole model): either is a result,
                # as long as the refusal is the strategy's one line.
                assert_one_line_error(planned, "no cut point satisfies strategy latency")
                continue
            assert planned.returncode == 0, planned.stderr
            plan = json.loads(planned.stdout)
            assert 0 <= plan["split"] <= edge_profile.num_cuts

    compared = run_cli(
        "plan", "--edge", str(edge), "--cloud", str(cloud), "--compare", "--deadline-ms", "1000"
    )
    assert compared.returncode == 0, compared.stderr
    for strategy in ("latency", "memory", "min-latency", "deadline"):
        assert strategy in compared.stdout
    _analyze(run_cli, edge, cloud, tmp_path / "analysis", edge_profile.num_cuts)


def _analyze(run_cli: RunCli, edge: Path, cloud: Path, report: Path, num_cuts: int) -> None:
    """`inferedge analyze` on real profiles writes every cut's row, the two links' splits and
    the plot."""
    done = run_cli("analyze", "--edge", edge, "--cloud", cloud, "--report-dir", report)
    assert done.returncode == 0, done.stderr
    analysis = json.loads((report / "cuts.json").read_text())
    assert [c["cut"] for c in analysis["cuts"]] == list(range(num_cuts + 1))
    assert len(analysis["splits"]) == 2 * (num_cuts + 1)
    assert (report / "cuts.png").read_bytes()[:4] == b"\x89PNG"
    assert "| cut | name |" in (report / "cuts.md").read_text()


def test_analyze_on_vgg11_profiles(run_cli: RunCli, tmp_path: Path) -> None:
    edge, cloud = tmp_path / "edge.json", tmp_path / "cloud.json"
    common = ["vgg11", "--input-shape", "3,32,32", *FAST]
    for path, device in ((cloud, ["--device-name", "cloud"]),
                         (edge, ["--device-name", "edge", "--emulate-slowdown", "4"])):  # fmt: skip
        done = run_cli("profile", *common, *device, "-o", path)
        assert done.returncode == 0, done.stderr
    num_cuts = parse_profile(edge.read_text(), "edge").num_cuts
    _analyze(run_cli, edge, cloud, tmp_path / "analysis", num_cuts)


def test_cuts_lists_block_outputs(run_cli: RunCli) -> None:
    done = run_cli("cuts", "resnet18", "--input-shape", "3,32,32")
    assert done.returncode == 0, done.stderr
    assert "layer1_0_relu_1" in done.stdout
    assert "layer1_0_conv2" not in done.stdout  # inside a residual block


def test_zoo_lists_every_model(run_cli: RunCli) -> None:
    done = run_cli("zoo")
    assert done.returncode == 0
    for name in ("resnet18", "resnet50", "mobilenet_v2", "vgg11", "vgg19", "densenet121",
                 "densenet161", "alexnet"):  # fmt: skip
        assert name in done.stdout
    assert "inception_v3   3x299x299" in done.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["resnet51"], ["unknown model 'resnet51'", "resnet50"]),
        (["resnet18", "--input-shape", "3,x,32"], ["'--input-shape'", "3,224,224"]),
        (["resnet18", "--input-shape", "3,-32,32"], ["'--input-shape'"]),
        (["resnet18", "--batch-sizes", "0"], ["'--batch-sizes'"]),
        (["resnet18", "--emulate-slowdown", "0.5"], ["'--emulate-slowdown'"]),
        (["no_such_module_xyz:build"], ["'--input-shape'", "required for models outside"]),
        (
            ["no_such_module_xyz:build", "--input-shape", "3,8,8"],
            ["no_such_module_xyz"],
        ),
        (["missing.pt2", "--input-shape", "3,8,8"], ["missing.pt2"]),
    ],
)
def test_profile_bad_input_is_one_line(
    run_cli: RunCli, tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    result = run_cli("profile", *args, *FAST, "-o", str(tmp_path / "p.json"))
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "p.json").exists()
