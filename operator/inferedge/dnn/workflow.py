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
from inferedge.dnn.backend import FRAMEWORKS, ProgressCallback
from inferedge.dnn.data import Dataset, Splits

ArrayFn = Callable[[np.ndarray], np.ndarray]
"""A segment or exit head, loaded: a float32 batch in, a float32 batch out."""


@dataclass(frozen=True)
class Schedule:
    """How long and how fast to train (backbone or exit heads)."""

    epochs: int
    batch_size: int
    learning_rate: float
    patience: int | None = None


@dataclass(frozen=True)
class Trained:
    """What a training run reports."""

    test_accuracy: float
    epochs: int
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
    ) -> None:
        """Train the heads in place on the frozen backbone (BatchNorm statistics included)."""
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
