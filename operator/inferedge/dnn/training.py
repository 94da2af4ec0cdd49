"""What every framework's training loops share: the schedule checks, batching, the epoch loop
with progress and early stopping, evaluation in batches, the exit-activation cache decision, and
what a run reports.

A backend supplies a `Loop`: how to shuffle the samples, train on one batch, and evaluate; a
`TrainingRun` runs it the same way in every framework.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import Any, Generic, Protocol, Self, TypeVar

from inferedge.core.errors import InferedgeError
from inferedge.core.profile import CutPoint
from inferedge.core.progress import ProgressCallback

_State = TypeVar("_State")
_Index = TypeVar("_Index", bound=Sized)
_Index_co = TypeVar("_Index_co", covariant=True)
_Accuracy = TypeVar("_Accuracy")
_Stats = TypeVar("_Stats")


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


def batch_slices(n: int, batch_size: int) -> Iterator[slice]:
    """The `num_batches(n, batch_size)` slices of an epoch's shuffled order of `n` samples.

    A trailing batch of a single sample is dropped unless it is the only batch (that sample is
    seen in other epochs): BatchNorm in training mode cannot normalise one sample of 1x1 maps or
    vectors.
    """
    for first in range(0, n, batch_size):
        size = min(batch_size, n - first)
        if size == batch_size or size > 1 or first == 0:
            yield slice(first, first + batch_size)


def mean_scores(
    n: int, batch_size: int, scores: Callable[[slice], Sequence[tuple[float, int]]]
) -> tuple[float, tuple[float, ...]]:
    """Evaluate classifiers in batches of `batch_size` over `n` samples.

    `scores(batch)` gives each classifier's summed loss and number of right predictions on the
    samples at `batch`. Returns the mean over samples of the losses summed over classifiers, and
    each classifier's accuracy.
    """
    loss_sum = 0.0
    correct: list[int] = []
    for first in range(0, n, batch_size):
        batch = scores(slice(first, min(first + batch_size, n)))
        if not correct:
            correct = [0] * len(batch)
        for i, (loss, right) in enumerate(batch):
            loss_sum += loss
            correct[i] += right
    return loss_sum / n, tuple(c / n for c in correct)


def cache_fits(
    cut_points: Sequence[CutPoint], cuts: Iterable[int], samples: int, limit_bytes: int
) -> bool:
    """Whether the activations at `cuts` of `samples` samples fit in `limit_bytes`, so a frozen
    backbone need run only once per sample for exit training."""
    per_sample = sum(cut_points[k].activation_bytes for k in set(cuts))
    return per_sample * samples <= limit_bytes


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


class Indexable(Protocol):
    """A batch of samples (a framework's tensor or array) that an index array selects from."""

    def __getitem__(self, index: Any, /) -> Self: ...

    def __len__(self) -> int: ...


_Array = TypeVar("_Array", bound=Indexable)


class ExitInputs(Generic[_Array]):
    """A frozen backbone's activations at the exit cuts for each split, cached or recomputed.

    Cached when `cached` (see `cache_fits`); otherwise every batch runs the backbone again
    (identical values, since the backbone is a fixed function). `data` maps each split's name to
    its inputs and labels; `taps(x)` gives the activations at the cuts for a batch of inputs,
    `tap_all(x)` the same for a whole split, run in batches.
    """

    def __init__(
        self,
        data: Mapping[str, tuple[_Array, _Array]],
        taps: Callable[[_Array], Sequence[_Array]],
        tap_all: Callable[[_Array], Sequence[_Array]],
        *,
        cached: bool,
    ) -> None:
        self._data = data
        self._taps = taps
        self.cached = cached
        self._cache = {name: tap_all(x) for name, (x, _) in data.items()} if cached else {}

    def size(self, split: str) -> int:
        """The number of samples of `split`."""
        return len(self._data[split][1])

    def batch(self, split: str, index: Any) -> tuple[tuple[_Array, ...], _Array]:
        """Each head's input for the samples at `index` of `split`, and their labels."""
        x, y = self._data[split]
        found = [a[index] for a in self._cache[split]] if self.cached else self._taps(x[index])
        return tuple(found), y[index]


def _ignore(*_: object) -> None:
    """A hook with nothing to do."""


class Order(Protocol[_Index_co]):
    """A shuffled order of sample indices (a framework's tensor or array), sliced into batches."""

    def __getitem__(self, batch: slice, /) -> _Index_co: ...


@dataclass(frozen=True)
class Loop(Generic[_Index, _Accuracy]):
    """The framework's part of one training run.

    `shuffle(n)` is a fresh random order of the `n` training samples, drawn once per epoch;
    `train_step(index)` trains on the samples at one batch of it and returns their mean loss;
    `validate()` gives the mean validation loss and the accuracy (one per classifier for exits),
    `test()` the test accuracy. `begin_epoch(epoch)` (1-based) and `end_epoch()` run around each
    epoch's batches, e.g. to set the learning rate or the train/eval mode.
    """

    shuffle: Callable[[int], Order[_Index]]
    train_step: Callable[[_Index], float]
    validate: Callable[[], tuple[float, _Accuracy]]
    test: Callable[[], _Accuracy]
    begin_epoch: Callable[[int], None] = _ignore
    end_epoch: Callable[[], None] = _ignore


class TrainingRun:
    """One training run's schedule, progress and clock, the same in every framework.

    Created first, it checks the schedule and starts the clock; `backbone` or `exits` then runs
    a backend's `Loop` epoch by epoch: shuffled batches, progress after each, validation after
    each epoch, early stopping, and the best epoch's weights restored at the end.
    """

    def __init__(
        self,
        *,
        epochs: int,
        batch_size: int,
        lr: float,
        patience: int,
        progress: ProgressCallback | None,
    ) -> None:
        check_schedule(epochs, batch_size, lr, patience)
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.patience = patience
        self._progress = progress
        self._started = time.perf_counter()

    def backbone(
        self, loop: Loop[_Index, float], best: EarlyStopping[_State], samples: int
    ) -> TrainResult:
        """Train on `samples` samples, stopping early on validation accuracy (ties to the lower
        validation loss)."""
        history = self._epochs(
            loop, best, EpochStats, lambda loss, accuracy: (accuracy, -loss), samples
        )
        return TrainResult(
            history=tuple(history),
            best_epoch=best.epoch,
            val_accuracy=history[best.epoch - 1].val_accuracy,
            test_accuracy=loop.test(),
            stopped_early=len(history) < self.epochs,
            seconds=time.perf_counter() - self._started,
        )

    def exits(
        self,
        loop: Loop[_Index, tuple[float, ...]],
        best: EarlyStopping[_State],
        samples: int,
        *,
        cached: bool,
    ) -> ExitTrainResult:
        """Train exit heads on `samples` samples, stopping early on their summed validation
        loss; `cached` says whether the backbone's activations were cached."""
        history = self._epochs(loop, best, ExitEpochStats, lambda loss, _: (-loss,), samples)
        return ExitTrainResult(
            history=tuple(history),
            best_epoch=best.epoch,
            val_accuracy=history[best.epoch - 1].val_accuracy,
            test_accuracy=loop.test(),
            stopped_early=len(history) < self.epochs,
            cached=cached,
            seconds=time.perf_counter() - self._started,
        )

    def _epochs(
        self,
        loop: Loop[_Index, _Accuracy],
        best: EarlyStopping[_State],
        stats: Callable[[int, float, float, _Accuracy], _Stats],
        score: Callable[[float, _Accuracy], tuple[float, ...]],
        samples: int,
    ) -> list[_Stats]:
        ticks = BatchProgress(self._progress, self.epochs * num_batches(samples, self.batch_size))
        history: list[_Stats] = []
        for epoch in range(1, self.epochs + 1):
            loop.begin_epoch(epoch)
            loss_sum = 0.0
            order = loop.shuffle(samples)
            for batch in batch_slices(samples, self.batch_size):
                index = order[batch]
                loss_sum += loop.train_step(index) * len(index)
                ticks.step()
            loop.end_epoch()
            val_loss, val_accuracy = loop.validate()
            history.append(stats(epoch, loss_sum / samples, val_loss, val_accuracy))
            if best.stop(epoch, score(val_loss, val_accuracy)):
                break
        best.restore()
        ticks.finish()
        return history
