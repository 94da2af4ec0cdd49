"""GitOps: the Argo CD health check (run for real in Lua) and the conditions kstatus reads."""

from __future__ import annotations

import re
from typing import Any

import pytest

from inferedge.api.pipeline_status import InferencePipelineStatus
from tests.chart.helpers import CHART, ROOT

LUA = CHART / "files" / "argocd-health.lua"
GITOPS_DOC = ROOT / "docs" / "gitops.md"
NOW = "2026-01-01T00:00:00Z"


def condition(type_: str, status: str, message: str = "", reason: str = "Test") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": NOW,
        "observedGeneration": 3,
    }


def pipeline(status: dict[str, Any] | None, generation: int = 3) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "inferedge.io/v1alpha1",
        "kind": "InferencePipeline",
        "metadata": {"name": "digits", "namespace": "default", "generation": generation},
        "spec": {},
    }
    if status is not None:
        # Only statuses the operator can write: the api model must accept each sample.
        InferencePipelineStatus.model_validate(status)
        obj["status"] = status
    return obj


SAMPLES = [
    ("no status yet", pipeline(None), "Progressing", "Waiting for the operator"),
    ("profiling", pipeline({"phase": "Profiling", "observedGeneration": 3, "conditions": [
        condition("Profiled", "False", "profiling Job running"),
        condition("Ready", "False", "waiting for profiles")]}),
        "Progressing", "waiting for profiles"),
    ("ready", pipeline({"phase": "Ready", "observedGeneration": 3, "conditions": [
        condition("Ready", "True", "edge 1/1, cloud 2/2 ready")]}),
        "Healthy", "edge 1/1, cloud 2/2 ready"),
    ("failed", pipeline({"phase": "Failed", "observedGeneration": 3,
        "message": "no cut point fits memoryFraction 0.05 (not retried: raise it)",
        "conditions": [condition("Planned", "False"), condition("Ready", "False")]}),
        "Degraded", "no cut point fits memoryFraction 0.05 (not retried: raise it)"),
    ("failed while old pods serve", pipeline({"phase": "Failed", "observedGeneration": 3,
        "conditions": [condition("Ready", "True", "still serving plan abc")]}),
        "Degraded", "Failed"),
    ("failed, reason in a condition", pipeline({"phase": "Failed", "observedGeneration": 3,
        "conditions": [condition("Profiled", "True"),
                       condition("ExitsTrained", "False", "training Job failed (not retried)")]}),
        "Degraded", "ExitsTrained: training Job failed (not retried)"),
    ("new spec not seen yet", pipeline({"phase": "Ready", "observedGeneration": 2, "conditions": [
        condition("Ready", "True")]}, generation=3),
        "Progressing", "Waiting for the operator to observe generation 3"),
    ("phase without conditions", pipeline({"phase": "Deploying", "observedGeneration": 3}),
        "Progressing", "Phase: Deploying"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "obj", "status", "message"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_argocd_health_in_lua(what: str, obj: dict[str, Any], status: str, message: str) -> None:
    lupa = pytest.importorskip("lupa")
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    # Argo CD hands the object over as a Lua table in the global `obj`.
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(LUA.read_text())
    assert (result["status"], result["message"]) == (status, message), what


def test_the_doc_carries_the_same_lua() -> None:
    text = GITOPS_DOC.read_text()
    blocks = re.findall(r"```lua\n(.*?)```", text, flags=re.S)
    script = LUA.read_text()
    indented = "\n".join(("    " + line) if line else "" for line in script.splitlines())
    assert script in blocks or indented in text, "docs/gitops.md must embed argocd-health.lua"
    assert "resource.customizations.health.inferedge.io_InferencePipeline" in text


def test_status_has_what_kstatus_reads() -> None:
    # kstatus (Flux) needs observedGeneration and a Ready condition in the metav1 shape.
    fields = InferencePipelineStatus.model_fields
    assert "observed_generation" in fields
    assert "conditions" in fields
    status = InferencePipelineStatus.model_validate(
        {"observedGeneration": 1, "conditions": [condition("Ready", "True")]}
    )
    dumped = status.model_dump(by_alias=True, exclude_none=True)
    assert dumped["observedGeneration"] == 1
    assert set(dumped["conditions"][0]) == {
        "type", "status", "reason", "message", "lastTransitionTime", "observedGeneration",
    }  # fmt: skip
