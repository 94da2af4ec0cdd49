"""What every framework's training loops share: the schedule checks, batch counting,
progress, early stopping, and what a run reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from inferedge.core.errors import InferedgeError
from inferedge.dnn.backend import ProgressCallback

_State = TypeVar("_State")


@dataclass(frozen=True)
class EpochStats:
    """One backbone epoch: mean training loss, validation loss and accuracy."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float


@dataclass(frozen=True)
class TrainResult:
    """A backbone training run; the model holds the weights of `best_epoch` (1-based)."""

    history: tuple[EpochStats, ...]
    best_epoch: int
    val_accuracy: float
    test_accuracy: float
    stopped_early: bool
    seconds: float


@dataclass(frozen=True)
class ExitEpochStats:
    """One exit-training epoch: mean summed cross-entropy, and each exit's validation accuracy."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: tuple[float, ...]


@dataclass(frozen=True)
class ExitTrainResult:
    """An exit-training run; the heads hold the weights of `best_epoch`. Accuracies per head."""

    history: tuple[ExitEpochStats, ...]
    best_epoch: int
    val_accuracy: tuple[float, ...]
    test_accuracy: tuple[float, ...]
    stopped_early: bool
    cached: bool
    seconds: float


def check_schedule(epochs: int, batch_size: int, lr: float, patience: int) -> None:
    """InferedgeError naming the first training setting out of its range."""
    checks = (
        ("epochs", epochs >= 1, ">= 1"),
        ("batch_size", batch_size >= 1, ">= 1"),
        ("lr", lr > 0, "> 0"),
        ("patience", patience >= 1, ">= 1"),
    )
    for name, ok, expected in checks:
        if not ok:
            value = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "patience": patience}
            raise InferedgeError(f"training: {name} must be {expected}, got {value[name]!r}")


def num_batches(n: int, batch_size: int) -> int:
    """Batches per epoch of `n` samples."""
    full, rest = divmod(n, batch_size)
    # A trailing batch of one sample is dropped unless it is the only one: BatchNorm cannot
    # normalise a lone sample.
    return full + (1 if rest > 1 or (rest == 1 and full == 0) else 0)


class BatchProgress:
    """Counts batches and reports them to an optional `progress(done, total)` callback."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self._callback = callback
        self._total = total
        self._done = 0

    def step(self) -> None:
        """One batch done."""
        self._done += 1
        if self._callback is not None:
            self._callback(self._done, self._total)

    def finish(self) -> None:
        """The run is over."""
        # Early stopping skips the remaining epochs; the bar still ends full.
        if self._callback is not None and self._done < self._total:
            self._callback(self._total, self._total)


class EarlyStopping(Generic[_State]):
    """The best epoch's score and weights, and when to give up; `snapshot` and `restore` copy the
    framework's weights out and back."""

    def __init__(
        self, snapshot: Callable[[], _State], restore: Callable[[_State], None], patience: int
    ) -> None:
        self._snapshot = snapshot
        self._restore = restore
        self._patience = patience
        self._score: tuple[float, ...] | None = None
        self._state = snapshot()
        self.epoch = 0

    def stop(self, epoch: int, score: tuple[float, ...]) -> bool:
        """Record `epoch`'s score (higher is better); whether patience has run out."""
        if self._score is None or score > self._score:
            self._score, self.epoch = score, epoch
            self._state = self._snapshot()
            return False
        return epoch - self.epoch >= self._patience

    def restore(self) -> None:
        """Put the best epoch's weights back."""
        self._restore(self._state)
