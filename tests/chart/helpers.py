"""Rendering the chart offline with the Helm SDK, and reading what it rendered."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "inferedge"
RELEASE = "ie"
NAMESPACE = "inferedge-system"
Manifest = dict[str, Any]


@cache
def chart() -> helm.Chart:
    """The chart, loaded once per test session (loading parses every file)."""
    return helm.Chart.load(CHART)


def render_files(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text, as `helm install` would render it."""
    return chart().render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)


def render(values: dict[str, Any] | None = None) -> list[Manifest]:
    """Every object the chart renders for `values` (NOTES.txt excluded)."""
    objects: list[Manifest] = []
    for path, text in sorted(render_files(values).items()):
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def find(objects: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    """The rendered objects of `kind` (and `name`)."""
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: list[Manifest], kind: str) -> Manifest:
    """The single rendered object of `kind`."""
    found = find(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def operator_args(objects: list[Manifest]) -> list[str]:
    """The operator container's arguments (the image's entrypoint is `inferedge`)."""
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    args: list[str] = container["args"]
    return args
