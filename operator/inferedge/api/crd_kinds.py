"""What each CRD declares beside its root model: names, printer columns, and extras for models
we use but do not own.

inferedge.api.crd_schema turns KINDS into CRDs and inferedge.api.crd_reference documents them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from pydantic import BaseModel

from inferedge.api.base import API_GROUP, CelRule
from inferedge.api.device_profile import DeviceProfile
from inferedge.api.pipeline import InferencePipeline
from inferedge.core.exits import (
    AdaptivePool,
    Conv2d,
    Dropout,
    ExitHeadSpec,
    Linear,
    _WindowPool,
)


@dataclass(frozen=True)
class Foreign:
    """Descriptions and CEL rules for a model we use but do not own (the core exit-head spec)."""

    fields: dict[str, str] = field(default_factory=dict)
    rules: tuple[CelRule, ...] = ()


# core.exits is shared with the planner and stays free of CRD concerns, so what the CRD needs
# on top of its models (descriptions, CEL mirrors of its validators) is declared here.
FOREIGN: Final[dict[type[BaseModel], Foreign]] = {
    ExitHeadSpec: Foreign(
        rules=(
            CelRule(
                rule="has(self.preset) != has(self.layers)",
                message="give exactly one of 'preset' or 'layers'",
                mirrors="ExitHeadSpec._one_of",
            ),
        )
    ),
    Conv2d: Foreign(
        fields={
            "out_channels": "Output channels (conv2d; required).",
            "kernel_size": "Window size (conv2d default 3, pools default 2).",
            "stride": "Window step (conv2d default 1; pools default to the window size).",
            "padding": "Zero padding on each side (default 0).",
            "bias": "Learn an additive bias (default true).",
        }
    ),
    _WindowPool: Foreign(
        fields={
            "kernel_size": "Window size (default 2).",
            "padding": "Zero padding on each side (default 0).",
        }
    ),
    AdaptivePool: Foreign(
        fields={
            "mode": "avg, max, or SDN's mixed blend (default avg).",
            "output_size": "Output height and width (default 1).",
        }
    ),
    Linear: Foreign(
        fields={
            "out_features": "Output features, or num_classes (the default) for the classifier.",
            "bias": "Learn an additive bias (default true).",
        },
        rules=(
            CelRule(
                rule="!has(self.out_features) || (type(self.out_features) == string"
                " ? self.out_features == 'num_classes'"
                " : (self.out_features >= 1 && self.out_features <= 65536))",
                message="out_features must be in 1..65536 or 'num_classes'",
                mirrors="Linear._bounded",
                field_path=".out_features",
            ),
        ),
    ),
    Dropout: Foreign(fields={"p": "Probability of zeroing an element while training."}),
}


@dataclass(frozen=True)
class Column:
    """One `kubectl get` printer column."""

    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0

    def as_dict(self) -> dict[str, str | int]:
        """The column as the CRD spells it."""
        out: dict[str, str | int] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            out["priority"] = self.priority
        return out


@dataclass(frozen=True)
class Kind:
    """A custom resource kind: its root model and its names."""

    model: type[BaseModel]
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[Column, ...]
    summary: str

    @property
    def kind(self) -> str:
        """The kind's name, e.g. InferencePipeline."""
        return self.model.__name__

    @property
    def crd_name(self) -> str:
        """metadata.name of the CRD: <plural>.<group>."""
        return f"{self.plural}.{API_GROUP}"

    @property
    def filename(self) -> str:
        """The CRD's file name, kubebuilder style: <group>_<plural>.yaml."""
        return f"{API_GROUP}_{self.plural}.yaml"


READY = '.status.conditions[?(@.type=="Ready")].status'
AGE = Column("Age", "date", ".metadata.creationTimestamp", "Time since the object was created.")
KINDS: Final = (
    Kind(
        model=InferencePipeline,
        plural="inferencepipelines",
        short_names=("ipl",),
        summary="A DNN split across an edge and a cloud DeviceProfile, with early exits. The "
        "operator profiles, plans, trains the exits, exports both parts and deploys them.",
        columns=(
            Column("Phase", "string", ".status.phase", "Lifecycle phase."),
            Column("Split", "string", ".status.plan.splitName", "Layer the edge part ends with."),
            Column("Exits", "string", ".status.plan.exits", "Exits as edge+cloud."),
            Column("Threshold", "number", ".status.threshold", "Confidence threshold in effect."),
            Column(
                "Offload", "number", ".status.offloadRatio", "Expected share of offloaded samples."
            ),
            Column("Ready", "string", READY, "Whether both parts serve (Ready condition)."),
            AGE,
            Column("Plan", "string", ".status.plan.hash", "Plan hash.", priority=1),
            Column(
                "Cost", "number", ".status.tuning.cost", "Edge pods' mean tuning cost.", priority=1
            ),
            Column(
                "Serving",
                "integer",
                ".status.adaptation.split",
                "The cut the edge splits at now (spec.adaptation: the operating point served).",
                priority=1,
            ),
        ),
    ),
    Kind(
        model=DeviceProfile,
        plural="deviceprofiles",
        short_names=("dprof",),
        summary="A class of device (an edge board, a cloud node pool): where its pods run and "
        "how the operator profiles models on it.",
        columns=(
            Column("Role", "string", ".spec.role", "edge or cloud."),
            Column("Node", "string", ".status.node", "Node the last profiling Job ran on."),
            Column("Profiled", "date", ".status.profiledAt", "When the last profiling finished."),
            AGE,
            Column("Accelerator", "string", ".spec.accelerator", "Accelerator.", priority=1),
        ),
    ),
)
CATEGORIES: Final = ("inferedge",)
