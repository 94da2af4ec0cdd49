"""What an InferencePipeline serves: the model, the lighter versions it may serve instead, and
the data and schedules it is trained with."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from inferedge.api.base import URI_MAX, CelRule, Spec, cel
from inferedge.core.zoo import (
    MODEL_NAME,
    NAME_RULE,
    URI_RULE,
    ZOO,
    Framework,
    model_name_error,
)

# One input dimension: 8192 covers any image side or sequence length we can profile.
InputDim = Annotated[int, Field(ge=1, le=8192)]
MAX_VERSIONS = 8
LABEL_MAX = 63 + len("-exit3")
"""The longest label a version has (a truncated one's)."""


def _cel_list(names: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{n}'" for n in names) + "]"


# Written to hold before defaulting too: an absent framework is torch.
_TENSORFLOW = "has(self.framework) && self.framework == 'tensorflow'"


def _zoo_name(name: str) -> str:
    """CEL: `name` is a zoo model of the spec's framework."""
    return (
        f"({_TENSORFLOW} ? {name} in {_cel_list(ZOO['tensorflow'])} : "
        f"{name} in {_cel_list(ZOO['torch'])})"
    )


def _stored_format(uri: str) -> str:
    """CEL: `uri` is a file of the spec's framework that loads without running code."""
    return f"({_TENSORFLOW} ? {uri}.endsWith('.keras') : {uri}.endsWith('.pt2'))"


def _every_version(condition: str) -> str:
    return f"!has(self.versions) || self.versions.all(v, {condition})"


VERSION_NAME_RULE = f"each version's {NAME_RULE}"
VERSION_URI_RULE = f"each version's {URI_RULE}"
TRUNCATED_RULE = (
    "a version with exit is the model itself, truncated at that edge exit: its name must be "
    "the model's, without uri or weightsUri"
)
OWN_NAME_RULE = (
    "a version without exit may not be the model itself, which is always the first version"
)
UNIQUE_LABELS_RULE = "versions must differ: each name (with its exit, if any) at most once"


class ModelVersion(Spec):
    """Another version of the model a pool may serve: a lighter zoo model, a model of your
    own, or the model itself truncated at one of its edge exits."""

    name: str = Field(
        pattern=MODEL_NAME,
        max_length=63,
        description="A zoo model of the model's framework; with `uri`, a label for a stored "
        "model; with `exit`, the model's own name.",
    )
    uri: str | None = Field(
        default=None,
        max_length=URI_MAX,
        description="A stored model, as `spec.model.uri` (.pt2 for torch, .keras for tensorflow).",
    )
    weights_uri: str | None = Field(
        default=None,
        max_length=URI_MAX,
        description="Trained weights, as `spec.model.weightsUri`.",
    )
    exit: int | None = Field(
        default=None,
        ge=1,
        le=3,
        description="The model itself truncated at its k-th edge exit: every request answers "
        "there. Only with the model's own name, no uri and no weightsUri; at most "
        "spec.exits.edge.",
    )

    @property
    def label(self) -> str:
        """How the status, the exploration table and the policy name this version."""
        return self.name if self.exit is None else f"{self.name}-exit{self.exit}"


class ModelSpec(Spec):
    """Which network to split: a zoo model, or one stored at `uri` in a format that loads
    without running code. A custom resource never names code."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            CelRule(
                rule=f"has(self.uri) || {_zoo_name('self.name')}",
                message=NAME_RULE,
                mirrors="ModelSpec._data_not_code",
                field_path=".name",
            ),
            CelRule(
                rule=f"!has(self.uri) || {_stored_format('self.uri')}",
                message=URI_RULE,
                mirrors="ModelSpec._data_not_code",
                field_path=".uri",
            ),
            CelRule(
                rule=_every_version(f"has(v.uri) || has(v.exit) || {_zoo_name('v.name')}"),
                message=VERSION_NAME_RULE,
                mirrors="ModelSpec._versions",
                field_path=".versions",
            ),
            CelRule(
                rule=_every_version(f"!has(v.uri) || {_stored_format('v.uri')}"),
                message=VERSION_URI_RULE,
                mirrors="ModelSpec._versions",
                field_path=".versions",
            ),
            CelRule(
                rule=_every_version(
                    "!has(v.exit) || (v.name == self.name && !has(v.uri) && !has(v.weightsUri))"
                ),
                message=TRUNCATED_RULE,
                mirrors="ModelSpec._versions",
                field_path=".versions",
            ),
            CelRule(
                rule=_every_version("has(v.exit) || v.name != self.name"),
                message=OWN_NAME_RULE,
                mirrors="ModelSpec._versions",
                field_path=".versions",
            ),
            CelRule(
                # Labels are unique when (name, exit) pairs are: a name has no '-'.
                rule=_every_version(
                    "self.versions.exists_one(w, w.name == v.name && "
                    "(has(w.exit) ? has(v.exit) && w.exit == v.exit : !has(v.exit)))"
                ),
                message=UNIQUE_LABELS_RULE,
                mirrors="ModelSpec._versions",
                field_path=".versions",
            ),
        )
    )

    name: str = Field(
        pattern=MODEL_NAME,
        max_length=63,
        description="A zoo model: for torch "
        + ", ".join(ZOO["torch"])
        + "; for tensorflow "
        + ", ".join(ZOO["tensorflow"])
        + ". With `uri`, a label for the stored model. Never a path or Python code.",
    )
    uri: str | None = Field(
        default=None,
        max_length=URI_MAX,
        description="A model of your own in the object store (s3://...): a torch.export .pt2 "
        "file for torch, a .keras file for tensorflow. Both load without running code.",
    )
    framework: Framework = Field(
        default="torch", description="Framework the model is written in: torch or tensorflow."
    )
    input_shape: tuple[InputDim, ...] = Field(
        min_length=1,
        max_length=4,
        description="Per-sample input shape without the batch dimension, e.g. [3, 32, 32]; "
        "each size in 1..8192.",
    )
    num_classes: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="Classes the model predicts. Default: from the dataset.",
    )
    weights_uri: str | None = Field(
        default=None,
        max_length=URI_MAX,
        description="Trained backbone weights (s3://... or a path); when unset, the weights "
        "stored with `uri`, else a zoo model trained on the dataset.",
    )
    versions: tuple[ModelVersion, ...] = Field(
        default=(),
        max_length=MAX_VERSIONS,
        description="Lighter versions the edge pools may serve instead (spec.distribution "
        "picks one per pool); the model itself is always the first version. Same input shape, "
        "classes and framework as the model.",
    )

    @model_validator(mode="after")
    def _data_not_code(self) -> ModelSpec:
        error = model_name_error(self.name, self.framework, self.uri)
        if error is not None:
            raise ValueError(error)
        return self

    @model_validator(mode="after")
    def _versions(self) -> ModelSpec:
        for version in self.versions:
            if version.exit is not None:
                itself = version.name == self.name
                if not itself or version.uri is not None or version.weights_uri is not None:
                    raise ValueError(TRUNCATED_RULE)
            elif version.name == self.name:
                raise ValueError(OWN_NAME_RULE)
            else:
                error = model_name_error(version.name, self.framework, version.uri)
                if error is not None:
                    raise ValueError(f"each version's {error}")
        labels = [version.label for version in self.versions]
        if len(set(labels)) != len(labels):
            raise ValueError(UNIQUE_LABELS_RULE)
        return self

    def all_versions(self) -> tuple[ModelVersion, ...]:
        """The versions a pool may serve: the model itself first, then `versions`."""
        itself = ModelVersion(name=self.name, uri=self.uri, weights_uri=self.weights_uri)
        return (itself, *self.versions)


class TrainingSpec(Spec):
    """A training schedule (backbone or exits)."""

    epochs: int = Field(default=20, ge=1, le=1000, description="Most epochs to train.")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Samples per training step.")
    learning_rate: float = Field(default=1e-3, gt=0, le=10, description="Optimizer step size.")
    patience: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Stop after this many epochs without a better validation loss.",
    )


class DatasetSpec(Spec):
    """Labelled data for training and calibration."""

    name: str = Field(
        default="digits",
        min_length=1,
        max_length=253,
        description="'digits' (built in), or a .npz / image folder at `uri`.",
    )
    uri: str | None = Field(
        default=None, max_length=URI_MAX, description="s3://bucket/key.npz, or a local path."
    )
    val_fraction: float = Field(
        default=0.15, gt=0, lt=0.5, description="Share held out to calibrate thresholds."
    )
    test_fraction: float = Field(
        default=0.15, gt=0, lt=0.5, description="Share held out to report accuracy."
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the split and training.")
    backbone_training: TrainingSpec = Field(
        default_factory=lambda: TrainingSpec(epochs=8),
        description="Schedule for training a zoo backbone (neither weightsUri nor uri given).",
    )
