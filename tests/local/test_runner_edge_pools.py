"""`inferedge run` reads the edge through its reference pool, and names that pool's field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inferedge.api.documents import DocumentError, parse_documents
from inferedge.local.runner import prepare
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
