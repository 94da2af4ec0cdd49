"""A user's model module, written where `module:callable` references can import it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def write_module(name: str, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write module `name` with `source` under `tmp_path`, importable for this test only (and
    imported afresh, whatever an earlier test left in `sys.modules`); returns `name`."""
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name
