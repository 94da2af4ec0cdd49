"""The real-cluster suite: skipped unless INFEREDGE_E2E_KUBECONFIG names a cluster to use.

See docs/controller.md ("Real-cluster suite") for what the cluster must run and the settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBECTL = REPO / ".venv" / "bin" / "kubectl"
T = TypeVar("T")


def setting(name: str, default: str) -> str:
    """An INFEREDGE_E2E_<NAME> setting."""
    return os.environ.get(f"INFEREDGE_E2E_{name}") or default


@dataclass
class Kubectl:
    """kubectl against the cluster under test, in one namespace."""

    kubeconfig: str
    namespace: str

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [str(KUBECTL), "--kubeconfig", self.kubeconfig, "-n", self.namespace, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result.stdout

    def apply(self, *objects: dict[str, Any]) -> str:
        return self("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        out = self("get", kind, name, "-o", "json", check=False)
        return json.loads(out) if out.strip() else None


def wait_for(what: str, check: Callable[[], T | None], timeout: float) -> T:
    """Poll `check` every few seconds until it is truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(3)  # poll interval against a real API server
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def kubectl() -> Iterator[Kubectl]:
    """A fresh namespace on the cluster named by INFEREDGE_E2E_KUBECONFIG, deleted afterwards."""
    kubeconfig = os.environ.get("INFEREDGE_E2E_KUBECONFIG")
    if not kubeconfig:
        pytest.skip("set INFEREDGE_E2E_KUBECONFIG to run the real-cluster suite")
    namespace = setting("NAMESPACE", "inferedge-e2e")
    run = Kubectl(os.path.expanduser(kubeconfig), namespace)
    run("create", "namespace", namespace, check=False)
    try:
        yield run
    finally:
        run("delete", "namespace", namespace, "--wait=false", check=False)
