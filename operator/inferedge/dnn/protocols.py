"""The interfaces a DNN framework implements, and the value types that cross them.

A `Backend` loads a model reference (zoo name or saved-model path), finds its cut points and
measures its segments; a `Workflow` does everything between a model name and served parts:
train, attach exits, observe, export, load. Backbones and exits are opaque handles owned by
their workflow, and a loaded partition step is a pair of numpy-in, numpy-out callables, so
nothing above `inferedge.dnn` ever touches a framework type. This module imports no framework;
`inferedge.dnn.frameworks` maps framework names to implementations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from inferedge.core.calibration import Observations
from inferedge.core.errors import InferedgeError
from inferedge.core.exits import ExitHeadSpec
from inferedge.core.manifest import Calibration, Manifest, Step
from inferedge.core.plan import Plan
from inferedge.core.profile import CutPoint, MeasuredProfile
from inferedge.core.progress import ProgressCallback
from inferedge.core.roles import Role
from inferedge.core.sweep import HeadCost
from inferedge.dnn.data import Dataset, Splits
from inferedge.dnn.training import EpochStats, TrainResult


@dataclass(frozen=True)
class ProfileRequest:
    """What to profile and how; the backend adds what it measures about the device."""

    model_ref: str
    num_classes: int
    input_shape: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    warmup: int
    repeats: int
    device_name: str
    emulate_slowdown: float = 1.0
    memory_bytes: int | None = None
    head: ExitHeadSpec | None = None
    """The pipeline's exit head spec: the served pass times one at every inner cut."""

    def __post_init__(self) -> None:
        checks = (
            ("num_classes", self.num_classes >= 1, ">= 1"),
            ("input_shape", _all_positive(self.input_shape), "positive sizes"),
            (
                "batch_sizes",
                _all_positive(self.batch_sizes)
                and len(set(self.batch_sizes)) == len(self.batch_sizes),
                "distinct positive sizes",
            ),
            ("warmup", self.warmup >= 0, ">= 0"),
            ("repeats", self.repeats >= 1, ">= 1"),
            ("emulate_slowdown", self.emulate_slowdown >= 1.0, ">= 1"),
            ("memory_bytes", self.memory_bytes is None or self.memory_bytes >= 1, ">= 1"),
        )
        for field, ok, expected in checks:
            if not ok:
                raise InferedgeError(
                    f"invalid profile request: {field} must be {expected}, "
                    f"got {getattr(self, field)!r}"
                )


class Backend(Protocol):
    """One DNN framework's implementation of cut-point discovery and profiling."""

    def cut_points(
        self, model_ref: str, num_classes: int, input_shape: tuple[int, ...]
    ) -> tuple[CutPoint, ...]:
        """The model's cut points, from the input (index 0) to the output (index K)."""
        ...

    def profile(
        self, request: ProfileRequest, progress: ProgressCallback | None = None
    ) -> MeasuredProfile:
        """Measure every segment at every batch size and return a validated profile."""
        ...


def _all_positive(sizes: tuple[int, ...]) -> bool:
    return len(sizes) > 0 and all(size >= 1 for size in sizes)


ArrayFn = Callable[[np.ndarray], np.ndarray]
"""A segment or exit head, loaded: a float32 batch in, a float32 batch out."""


class ArtifactLoadError(InferedgeError):
    """An exported file is missing, corrupted or not in its framework's format."""


class ExitsFileError(InferedgeError):
    """An exits file is missing, malformed, or was trained for another plan."""


@dataclass(frozen=True)
class Schedule:
    """How long and how fast to train (backbone or exit heads)."""

    epochs: int
    batch_size: int
    learning_rate: float
    patience: int | None = None


@dataclass(frozen=True)
class Trained:
    """What a backbone training run reports; the model holds the weights of `best_epoch`."""

    test_accuracy: float
    epochs: int
    seconds: float
    val_accuracy: float | None = None
    best_epoch: int | None = None
    history: tuple[EpochStats, ...] = ()

    @classmethod
    def of(cls, result: TrainResult) -> Trained:
        """The report of a finished training loop."""
        return cls(
            result.test_accuracy,
            len(result.history),
            result.seconds,
            val_accuracy=result.val_accuracy,
            best_epoch=result.best_epoch,
            history=result.history,
        )


@dataclass(frozen=True)
class ExitsTrained:
    """What an exit-training run reports: one accuracy per head, in the order they were given."""

    val_accuracy: tuple[float, ...]
    test_accuracy: tuple[float, ...]
    best_epoch: int
    seconds: float


@dataclass(frozen=True)
class ExitHandle:
    """One exit head of a plan: where it sits; `model` is the framework's own object."""

    cut_index: int
    part: Role
    model: Any


@dataclass(frozen=True)
class RunnableStep:
    """One step of a loaded part: its segment, and its exit head if the step ends at one."""

    step: Step
    segment: ArrayFn
    head: ArrayFn | None


class Workflow(Protocol):
    """One framework's implementation of everything between a model name and served parts."""

    framework: str
    weights_suffix: str
    """File suffix of saved backbone weights (`.pt`, `.weights.h5`)."""
    exits_suffix: str
    """File suffix of saved exit heads (`.pt`, `.npz`)."""

    def new_backbone(
        self, model_ref: str, num_classes: int, input_shape: tuple[int, ...], seed: int
    ) -> Any:
        """A freshly initialised backbone (zoo name or the user's model file)."""
        ...

    def train_backbone(
        self,
        backbone: Any,
        splits: Splits,
        schedule: Schedule,
        *,
        seed: int,
        progress: ProgressCallback | None = None,
    ) -> Trained:
        """Train in place on `splits.train`, early-stopping on `splits.val`."""
        ...

    def save_backbone(self, backbone: Any, path: Path) -> None:
        """Write the weights with what identifies the model (ref, classes, input shape)."""
        ...

    def load_backbone(self, path: Path) -> Any:
        """The backbone a weights file belongs to, with its cut graph ready."""
        ...

    def check_plan(self, plan: Plan, backbone: Any, source: str) -> None:
        """Refuse a plan made for another model than `backbone` (one line naming both)."""
        ...

    def build_exits(
        self,
        plan: Plan,
        backbone: Any,
        spec: ExitHeadSpec | Mapping[int, ExitHeadSpec],
        seed: int,
    ) -> list[ExitHandle]:
        """Untrained, shape-checked heads for every exit of `plan`."""
        ...

    def train_exits(
        self,
        backbone: Any,
        exits: Sequence[ExitHandle],
        splits: Splits,
        schedule: Schedule,
        *,
        seed: int,
        progress: ProgressCallback | None = None,
    ) -> ExitsTrained:
        """Train the heads in place on the frozen backbone (BatchNorm statistics included)."""
        ...

    def save_exits(self, path: Path, plan: Plan, exits: Sequence[ExitHandle]) -> None:
        """Write the heads (declarative layers and weights) trained for `plan`, atomically."""
        ...

    def load_exits(self, path: Path, plan: Plan) -> list[ExitHandle]:
        """The heads `save_exits` wrote for `plan`; `ExitsFileError` for any other file."""
        ...

    def head_costs(self, plan: Plan, exits: Sequence[ExitHandle]) -> list[HeadCost]:
        """FLOPs (one sample) and parameter bytes of every head."""
        ...

    def observe(
        self,
        plan: Plan,
        backbone: Any,
        exits: Sequence[ExitHandle],
        data: Dataset,
        split: str,
    ) -> Observations:
        """What every exit and the final classifier say about each sample of `data`."""
        ...

    def export(
        self,
        plan: Plan,
        backbone: Any,
        exits: Sequence[ExitHandle],
        calibration: Calibration | None,
        out_dir: Path,
    ) -> Manifest:
        """Write both parts' files under `out_dir` and return their manifest."""
        ...

    def load_part(
        self, manifest: Manifest, part: Role, root: Path, *, whole_chain: bool = False
    ) -> list[RunnableStep]:
        """Load a part's files from `root`, refusing any file whose sha256 differs; with
        `whole_chain`, every step of the set (`core.manifest.loaded_steps`)."""
        ...
