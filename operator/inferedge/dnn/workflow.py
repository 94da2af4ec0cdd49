"""The framework-neutral steps a pipeline runs: train, attach exits, observe, export, load.

`inferedge run`, the CLI and the runtime call a `Workflow`; each framework (torch, tensorflow)
provides one. Backbones and exits are opaque handles owned by their workflow, and a loaded
partition step is a pair of numpy-in, numpy-out callables, so nothing above `inferedge.dnn`
ever touches a framework type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from inferedge.core.calibration import Observations
from inferedge.core.errors import InferedgeError, one_line
from inferedge.core.exits import ExitHeadSpec
from inferedge.core.manifest import Calibration, Manifest, Step
from inferedge.core.plan import Part, Plan
from inferedge.core.sweep import HeadCost
from inferedge.dnn.backend import FRAMEWORKS, ProgressCallback, quiet_native_import
from inferedge.dnn.data import Dataset, Splits
from inferedge.dnn.training import EpochStats, TrainResult

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
    part: Part
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
        self, manifest: Manifest, part: Literal["edge", "cloud"], root: Path
    ) -> list[RunnableStep]:
        """Load a part's files from `root`, refusing any file whose sha256 differs."""
        ...


WEIGHTS_SUFFIXES = {"torch": ".pt", "tensorflow": ".weights.h5"}
"""Each framework's backbone-weights suffix (its workflow's `weights_suffix`)."""


def weights_framework(path: Path) -> str | None:
    """The framework whose weights suffix `path` has, or None for another name."""
    # Longest first: a name ending in `.weights.h5` must not be taken for another suffix.
    for framework, suffix in sorted(WEIGHTS_SUFFIXES.items(), key=lambda kv: -len(kv[1])):
        if path.name.endswith(suffix):
            return framework
    return None


def get_workflow(framework: str) -> Workflow:
    """The workflow of `framework`, importing the framework only now."""
    if framework == "torch":
        try:
            from inferedge.dnn.torch.workflow import TorchWorkflow
        except ImportError as exc:
            raise InferedgeError(
                f"the torch backend needs PyTorch ({one_line(exc)}); "
                "install it with: pip install 'inferedge[torch]'"
            ) from None
        workflow: Workflow = TorchWorkflow()
        return workflow
    if framework == "tensorflow":
        try:
            with quiet_native_import():
                from inferedge.dnn.tensorflow.workflow import KerasWorkflow
        except ImportError as exc:
            raise InferedgeError(
                f"the tensorflow backend needs TensorFlow ({one_line(exc)}); "
                "install it with: pip install 'inferedge[tensorflow]'"
            ) from None
        keras_workflow: Workflow = KerasWorkflow()
        return keras_workflow
    raise InferedgeError(
        f"unknown framework {framework!r}; expected one of {', '.join(FRAMEWORKS)}"
    )
