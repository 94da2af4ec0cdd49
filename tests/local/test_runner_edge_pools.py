"""`inferedge run` reads the edge through its reference pool, and names that pool's field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inferedge.api.documents import DocumentError, parse_documents
from inferedge.local.runner import prepare
from tests.conftest import run_inferedge
from tests.local.test_runner_prepare import Quiet

ROOT = Path(__file__).resolve().parents[2]


def test_a_reference_pool_of_the_wrong_role_is_named_by_its_field(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((ROOT / "examples" / "digits-pipeline.yaml").read_text()))
    docs[2]["spec"]["cloud"] = {"profile": "jetson-orin-nano"}
    docs[2]["spec"]["edge"] = {"pools": [{"name": "big", "profile": "cloud-cpu"}]}
    parsed = parse_documents(yaml.safe_dump_all(docs), "m.yaml")
    with pytest.raises(DocumentError, match=r"spec\.edge\.pools\[0\]\.profile 'cloud-cpu' is a"):
        prepare(parsed, parsed.pipelines[0], tmp_path, Quiet(), "m.yaml")
    assert not (tmp_path / "store").exists()  # refused before any step ran


def test_a_run_of_several_pools_without_a_distribution_says_it_serves_the_first(
    tmp_path: Path,
) -> None:
    docs = list(yaml.safe_load_all((ROOT / "examples" / "digits-pipeline.yaml").read_text()))
    docs[2]["spec"]["edge"] = {
        "pools": [
            {"name": "a", "profile": "jetson-orin-nano"},
            {"name": "b", "profile": "jetson-orin-nano"},
        ]
    }
    docs[2]["spec"]["cloud"] = {"profile": "not-declared"}
    manifest = tmp_path / "m.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    done = run_inferedge("run", "-f", manifest, "-o", tmp_path / "out")
    assert "serves the first pool (a) only; set spec.distribution" in done.stdout
    # The run then stops at the first thing wrong, in one line.
    assert done.returncode == 2
    assert "not-declared" in done.stderr
