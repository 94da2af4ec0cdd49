"""`inferedge analyze` and `inferedge versions` in a subprocess: tables, JSON, the report files
and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from inferedge.core.profile import dump_profile
from inferedge.core.synthetic import synthetic_profile
from tests.clitools import RunCli, assert_one_line_error


def test_analyze_prints_the_splits_and_writes_tables_json_and_a_plot(
    run_cli: RunCli, profile_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    edge, cloud = profile_pair
    report = tmp_path / "report"
    result = run_cli(
        "analyze", "--edge", edge, "--cloud", cloud, "--rtt-ms", "10", "--report-dir", report
    )
    assert result.returncode == 0, result.stderr
    assert "8 Mbps ms" in result.stdout
    assert "20 Mbps ms" in result.stdout
    assert "Best cut" in result.stdout
    analysis = json.loads((report / "cuts.json").read_text())
    assert len(analysis["cuts"]) == 51
    assert {r["bandwidth_mbps"] for r in analysis["splits"]} == {8.0, 20.0}
    assert [b["bandwidth_mbps"] for b in analysis["best"]] == [8.0, 20.0]
    markdown = (report / "cuts.md").read_text()
    assert "| cut | name | segment ms |" in markdown
    assert "| bandwidth | best cut by latency | best cut by edge energy |" in markdown
    assert (report / "cuts.png").read_bytes()[:4] == b"\x89PNG"


def test_analyze_json_takes_the_links_and_powers_given(
    run_cli: RunCli, profile_pair: tuple[Path, Path]
) -> None:
    edge, cloud = profile_pair
    args = ["analyze", "--edge", edge, "--cloud", cloud, "--json", "--bandwidth-mbps", "1"]
    result = run_cli(*args, "--bandwidth-mbps", "50", "--radio-w", "2.5", "--idle-w", "0.4")
    assert result.returncode == 0, result.stderr
    analysis = json.loads(result.stdout)
    assert (analysis["radio_w"], analysis["idle_w"]) == (2.5, 0.4)
    assert [b["bandwidth_mbps"] for b in analysis["best"]] == [1.0, 50.0]
    # a faster link never moves the fastest split later
    slow, fast = analysis["best"]
    assert fast["by_latency"] <= slow["by_latency"]


def test_analyze_refuses_bad_input_in_one_line(
    run_cli: RunCli, profile_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    edge, cloud = profile_pair
    result = run_cli("analyze", "--edge", edge, "--cloud", cloud, "--bandwidth-mbps", "0")
    assert_one_line_error(result, "--bandwidth-mbps")
    other = tmp_path / "other.json"
    other.write_text(dump_profile(synthetic_profile(7, seed=3, device_name="cloud")))
    result = run_cli("analyze", "--edge", edge, "--cloud", other)
    assert_one_line_error(result, "different models")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = run_cli("analyze", "--edge", broken, "--cloud", cloud)
    assert_one_line_error(result, "broken.json")
    result = run_cli("analyze", "--edge", edge, "--cloud", cloud, "--batch-size", "8")
    assert_one_line_error(result, "batch_size: 8 was not profiled")


def _version_profiles(tmp_path: Path) -> list[Path]:
    """Two versions (a 6-cut and a 12-cut synthetic model) on two device classes."""
    paths = []
    for device, ms_per_gflop in (("nano", 20.0), ("pi4", 60.0)):
        for cuts in (6, 12):
            path = tmp_path / f"{device}-{cuts}.json"
            profile = synthetic_profile(cuts, ms_per_gflop=ms_per_gflop, device_name=device)
            path.write_text(dump_profile(profile))
            paths.append(path)
    return paths


def test_versions_tabulates_every_version_on_every_class_and_plots_the_triangle(
    run_cli: RunCli, tmp_path: Path
) -> None:
    args = [a for p in _version_profiles(tmp_path) for a in ("--profile", p)]
    accuracy = "synthetic-6-0=0.88,synthetic-12-0=0.95"
    report = tmp_path / "report"
    result = run_cli("versions", *args, "--accuracy", accuracy, "--report-dir", report)
    assert result.returncode == 0, result.stderr
    assert "synthetic-12-0" in result.stdout
    rows = json.loads((report / "versions.json").read_text())
    assert {(r["device"], r["version"]) for r in rows} == {
        (d, f"synthetic-{c}-0") for d in ("nano", "pi4") for c in (6, 12)
    }
    nano = {r["version"]: r for r in rows if r["device"] == "nano"}
    pi4 = {r["version"]: r for r in rows if r["device"] == "pi4"}
    # the same model is three times slower on the Pi
    assert pi4["synthetic-6-0"]["latency_p50_ms"] > 2.9 * nano["synthetic-6-0"]["latency_p50_ms"]
    assert (report / "versions.png").read_bytes()[:4] == b"\x89PNG"
    assert "| device | version | accuracy |" in (report / "versions.md").read_text()


def test_versions_refuses_missing_accuracy_and_duplicates_in_one_line(
    run_cli: RunCli, tmp_path: Path
) -> None:
    first, *_ = _version_profiles(tmp_path)
    result = run_cli("versions", "--profile", first, "--accuracy", "other=0.9")
    assert_one_line_error(result, "--accuracy: no accuracy for 'synthetic-6-0'")
    result = run_cli("versions", "--profile", first, "--profile", first, "--accuracy",
                     "synthetic-6-0=0.9")  # fmt: skip
    assert_one_line_error(result, "a second profile of synthetic-6-0 on nano")
    result = run_cli("versions", "--profile", first, "--accuracy", "synthetic-6-0=1.5")
    assert_one_line_error(result, "--accuracy", "NAME=ACCURACY")
