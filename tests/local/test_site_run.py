"""`inferedge run` of a site: two emulated edge pools, the model and a truncated version of it,
every step for real (profiles, training, export), every (class, version) measured as served,
then the replicas and the dispatcher served
at the target rate, and the report read back."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import REPO, run_inferedge


def site_manifest() -> str:
    docs = list(yaml.safe_load_all((REPO / "examples" / "collaborative-edge.yaml").read_text()))
    for doc in docs[:4]:
        doc["spec"]["profiling"] = {"batchSizes": [1], "repeats": 3}
    docs[0]["spec"]["emulation"]["slowdown"] = 2
    docs[1]["spec"]["emulation"]["slowdown"] = 4
    spec = docs[4]["spec"]
    spec["model"] = {
        "name": "small_resnet",
        "inputShape": [3, 16, 16],
        "versions": [{"name": "small_resnet", "exit": 1}],
    }
    spec["dataset"]["backboneTraining"] = {"epochs": 2}
    spec["exits"] = {"edge": 1, "cloud": 0, "training": {"epochs": 1}}
    spec["edge"]["pools"] = [
        {"name": "fast", "profile": "jetson-nano", "replicas": 1},
        {"name": "slow", "profile": "odroid-xu4", "replicas": 1},
    ]
    spec["distribution"] = {"targetRate": 8, "minAccuracy": 0.0}
    return yaml.safe_dump_all([*docs[:2], docs[3], docs[4]])


def test_a_site_runs_every_version_decides_and_serves_without_loss(tmp_path: Path) -> None:
    manifest = tmp_path / "site.yaml"
    manifest.write_text(site_manifest())
    out = tmp_path / "run"
    done = run_inferedge(
        "run", "-f", manifest, "-o", out, "--site-seconds", "4", "--measure-seconds", "1"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report" / "site.json").read_text())
    assert report["emulated"] is True
    rows = {(r["device"], r["version"]) for r in report["table"]}
    assert rows == {
        (device, version)
        for device in ("jetson-nano", "odroid-xu4")
        for version in ("small_resnet", "small_resnet-exit1")
    }
    for row in report["table"]:
        # Every row measured as served, on a replica of its own (speeds compared in
        # tests/core/test_site_table.py, from profiles: timings here depend on the machine).
        assert row["measured"] is True
        assert row["throughput"] > 0
        assert 0 < row["latency_p50_ms"] <= row["latency_p95_ms"]
    measure_logs = out / "logs" / "measure"
    assert len(list(measure_logs.glob("*.log"))) >= len(rows)
    decided = report["distribution"]
    assert {a["pool"] for a in decided["assignments"]} <= {"fast", "slow"}
    assert decided["target"] == 8
    served = report["served"]
    assert served["sent"] == served["answered"] + served["refused"] + served["lost"]
    assert served["lost"] == 0
    assert served["answered"] > 0
    status = report["status"]
    assert {p["name"]: p["replicas"] for p in status["pools"]} == {"fast": 1, "slow": 1}
    assert sum(p["answered"] for p in status["pools"]) == served["answered"]
    assert status["decisions"][0]["cause"] == "start"
    assert "EMULATED" in (out / "report" / "site.md").read_text()
    assert (out / "report" / "versions.png").stat().st_size > 0
    for version in ("small_resnet",):
        assert (out / "versions" / version / "plan.json").is_file()
