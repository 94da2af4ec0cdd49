"""`inferedge plan` end to end in a subprocess: output, JSON, env defaults and one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from inferedge.core.plan import Plan
from tests.clitools import RunCli, assert_one_line_error


def test_plan_prints_a_table(run_cli: RunCli, profile_pair: tuple[Path, Path]) -> None:
    edge, cloud = profile_pair
    result = run_cli("plan", "--edge", str(edge), "--cloud", str(cloud), "--placement", "pareto")
    assert result.returncode == 0, result.stderr
    assert "Exit paths" in result.stdout
    assert "Cloud cost" in result.stdout


@pytest.mark.parametrize("strategy", ["latency", "memory", "min-latency", "deadline"])
def test_plan_json_round_trips_for_every_strategy(
    run_cli: RunCli, profile_pair: tuple[Path, Path], tmp_path: Path, strategy: str
) -> None:
    edge, cloud = profile_pair
    out = tmp_path / "plan.json"
    args = ["plan", "--edge", str(edge), "--cloud", str(cloud), "--strategy", strategy]
    args += ["--json", "-o", str(out), "--memory-fraction", "0.9", "--deadline-ms", "500"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    plan = Plan.model_validate_json(result.stdout)
    assert plan.request.strategy == strategy
    assert Plan.model_validate_json(out.read_text()) == plan


def test_flags_default_from_the_environment(
    run_cli: RunCli, profile_pair: tuple[Path, Path]
) -> None:
    edge, cloud = profile_pair
    env = {**os.environ, "INFEREDGE_PLAN_RTT_MS": "77", "INFEREDGE_PLAN_STRATEGY": "min-latency"}
    result = run_cli("plan", "--edge", str(edge), "--cloud", str(cloud), "--json", env=env)
    assert result.returncode == 0, result.stderr
    request = json.loads(result.stdout)["request"]
    assert request["link"]["rtt_ms"] == 77
    assert request["strategy"] == "min-latency"


def test_infeasible_memory_fraction(run_cli: RunCli, profile_pair: tuple[Path, Path]) -> None:
    edge, cloud = profile_pair
    result = run_cli(
        "plan", "--edge", str(edge), "--cloud", str(cloud), "--strategy", "memory",
        "--memory-fraction", "0.01",
    )  # fmt: skip
    assert_one_line_error(result, "no cut point satisfies memory fraction 0.01", "smallest prefix")


def test_profile_of_another_schema_version(
    run_cli: RunCli, profile_pair: tuple[Path, Path]
) -> None:
    edge, cloud = profile_pair
    raw = json.loads(edge.read_text())
    raw["schema_version"] = "inferedge.io/profile/v0"
    edge.write_text(json.dumps(raw))
    result = run_cli("plan", "--edge", str(edge), "--cloud", str(cloud))
    assert_one_line_error(result, "schema_version is 'inferedge.io/profile/v0'", str(edge))


def test_corrupt_profile(run_cli: RunCli, profile_pair: tuple[Path, Path]) -> None:
    edge, cloud = profile_pair
    edge.write_text("{]")
    assert_one_line_error(
        run_cli("plan", "--edge", str(edge), "--cloud", str(cloud)), "not valid JSON"
    )


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--strategy", "fastest"], "'--strategy'"),
        (["--edge-exits", "4"], "'--edge-exits'"),
        (["--strategy", "deadline"], "'--deadline-ms'"),
        (["--bandwidth-mbps", "0"], "'--bandwidth-mbps'"),
        (["--memory-fraction", "1.5"], "'--memory-fraction'"),
        (["--exit-accuracy", "3=1.5"], "'--exit-accuracy'"),
        (["--batch-size", "8"], "batch size 8 was not profiled"),
    ],
)
def test_bad_flags_name_the_flag(
    run_cli: RunCli, profile_pair: tuple[Path, Path], flags: list[str], fragment: str
) -> None:
    edge, cloud = profile_pair
    result = run_cli("plan", "--edge", str(edge), "--cloud", str(cloud), *flags)
    assert_one_line_error(result, fragment)


def test_bad_cost_model_file(
    run_cli: RunCli, profile_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    edge, cloud = profile_pair
    cost = tmp_path / "cost.json"
    cost.write_text(json.dumps({"usd_per_gb_second": -1}))
    result = run_cli("plan", "--edge", str(edge), "--cloud", str(cloud), "--cost-model", str(cost))
    assert_one_line_error(result, "usd_per_gb_second")


def test_custom_cost_model_is_used(
    run_cli: RunCli, profile_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    edge, cloud = profile_pair
    cost = tmp_path / "cost.json"
    cost.write_text(json.dumps({"name": "flat", "usd_per_million_invocations": 5.0,
                                "usd_per_gb_second": 0, "usd_per_ghz_second": 0}))  # fmt: skip
    args = ["plan", "--edge", str(edge), "--cloud", str(cloud), "--cost-model", str(cost)]
    result = run_cli(*args, "--json")
    assert json.loads(result.stdout)["cloud_usd_per_million"] == pytest.approx(5.0)


def test_unknown_command_and_help(run_cli: RunCli) -> None:
    assert_one_line_error(run_cli("replan"), "No such command 'replan'")
    helped = run_cli("plan", "--help")
    assert helped.returncode == 0
    assert "--strategy" in helped.stdout
    assert "Neurosurgeon" in helped.stdout
