"""The CustomResourceDefinitions the tests install: the generated crds/*.yaml.

Should the generated files be missing (a checkout mid-change), minimal CRDs with the documented
names, printer columns and status subresource stand in, so the operator tests still run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"

_PIPELINE_COLUMNS = [
    ("Phase", "string", ".status.phase"),
    ("Split", "string", ".status.plan.splitName"),
    ("Exits", "string", ".status.plan.exits"),
    ("Threshold", "number", ".status.threshold"),
    ("Offload", "number", ".status.offloadRatio"),
    ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
    ("Age", "date", ".metadata.creationTimestamp"),
]


def _minimal(kind: str, plural: str, short: str, columns: list[tuple[str, str, str]]) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.inferedge.io"},
        "spec": {
            "group": "inferedge.io",
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["inferedge"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": n, "type": t, "jsonPath": p} for n, t, p in columns
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def crd_files() -> list[Path]:
    """The generated CRD files, if the checkout has them."""
    return sorted(CRD_DIR.glob("*.yaml"))


def load_crds() -> list[dict[str, Any]]:
    """The CRDs to install: generated ones if present, else the minimal stand-ins."""
    files = crd_files()
    if files:
        return [yaml.safe_load(f.read_text()) for f in files]
    age = [("Age", "date", ".metadata.creationTimestamp")]
    return [
        _minimal("InferencePipeline", "inferencepipelines", "ipl", _PIPELINE_COLUMNS),
        _minimal(
            "DeviceProfile", "deviceprofiles", "dprof", [("Role", "string", ".spec.role"), *age]
        ),
    ]
