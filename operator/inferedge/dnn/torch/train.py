"""Training: the backbone on its own, then the exit heads on the frozen backbone.

Both loops are seeded (the shuffling generator and the global RNG used by dropout are seeded
from `seed` inside a forked RNG state, so the caller's random state is untouched), stop early
when the validation metric has not improved for `patience` epochs, and end with the best
epoch's weights restored.

Exit training never updates the backbone: it runs in eval mode under `no_grad`, so neither its
weights nor its BatchNorm statistics can move. A frozen backbone in eval mode is a fixed
function, so its activations at the exit cut points are computed once and cached (when they fit
in `cache_limit_bytes`), which makes an exit epoch cost only the heads' own work.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from inferedge.core.errors import InferedgeError
from inferedge.dnn.backend import ProgressCallback
from inferedge.dnn.data import Dataset, Splits
from inferedge.dnn.torch.exits import Taps, frozen, module_device
from inferedge.dnn.torch.graph import CutGraph
from inferedge.dnn.training import (
    BatchProgress,
    EarlyStopping,
    EpochStats,
    ExitEpochStats,
    ExitTrainResult,
    TrainResult,
    check_schedule,
    num_batches,
)

# Batch size for passes without gradients (evaluation, caching activations).
_EVAL_BATCH = 256
DEFAULT_CACHE_LIMIT_BYTES = 2 * 1024**3


def train_backbone(
    model: nn.Module,
    splits: Splits,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    patience: int = 5,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train `model` with Adam on cross-entropy, early-stopping on validation accuracy.

    The learning rate decays from `lr` along a cosine over the `epochs` budget, so the last
    epochs fine-tune rather than jump around a minimum.

    The model ends in eval mode holding the best epoch's weights (highest validation accuracy,
    ties to the lower validation loss). `progress(done, total)` is called after every batch,
    with total = epochs x batches per epoch, and with (total, total) at the end.
    """
    check_schedule(epochs, batch_size, lr, patience)
    start = time.perf_counter()
    device = module_device(model)
    x, y = _tensors(splits.train, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    ticks = BatchProgress(progress, epochs * num_batches(len(y), batch_size))
    best = _early_stopping([model], patience)
    history: list[EpochStats] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        shuffle = torch.Generator().manual_seed(seed)
        for epoch in range(1, epochs + 1):
            model.train()
            loss_sum = 0.0
            for index in _batches(len(y), batch_size, shuffle):
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x[index]), y[index])
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                loss_sum += loss.item() * len(index)
                ticks.step()
            schedule.step()
            model.eval()
            val_loss, val_accuracy = _evaluate(model, splits.val, device)
            history.append(EpochStats(epoch, loss_sum / len(y), val_loss, val_accuracy))
            if best.stop(epoch, (val_accuracy, -val_loss)):
                break
    best.restore()
    ticks.finish()
    _, test_accuracy = _evaluate(model, splits.test, device)
    return TrainResult(
        history=tuple(history),
        best_epoch=best.epoch,
        val_accuracy=history[best.epoch - 1].val_accuracy,
        test_accuracy=test_accuracy,
        stopped_early=len(history) < epochs,
        seconds=time.perf_counter() - start,
    )


def train_exits(
    graph: CutGraph,
    heads: Sequence[tuple[int, nn.Module]],
    splits: Splits,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    patience: int = 5,
    progress: ProgressCallback | None = None,
    cache_limit_bytes: int = DEFAULT_CACHE_LIMIT_BYTES,
) -> ExitTrainResult:
    """Train the exit heads, `(cut index, head)` pairs, jointly on the frozen backbone.

    The loss is the sum of the heads' cross-entropies (Adam, cosine-decayed learning rate as in
    `train_backbone`); early stopping watches the summed validation loss. The backbone's
    weights, BatchNorm statistics, `requires_grad` flags and train/eval modes are the same
    afterwards; the heads end in eval mode holding the best epoch's weights.
    `progress(done, total)` is called as in `train_backbone`.
    """
    check_schedule(epochs, batch_size, lr, patience)
    if not heads:
        raise InferedgeError("exit training needs at least one exit head")
    start = time.perf_counter()
    modules = [head for _, head in heads]
    optimizer = torch.optim.Adam([p for head in modules for p in head.parameters()], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    best = _early_stopping(modules, patience)
    history: list[ExitEpochStats] = []
    with frozen(graph.module):
        inputs = _ExitInputs(graph, [cut for cut, _ in heads], splits, cache_limit_bytes)
        n = inputs.size("train")
        ticks = BatchProgress(progress, epochs * num_batches(n, batch_size))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            shuffle = torch.Generator().manual_seed(seed)
            for epoch in range(1, epochs + 1):
                for head in modules:
                    head.train()
                loss_sum = 0.0
                for index in _batches(n, batch_size, shuffle):
                    optimizer.zero_grad()
                    activations, labels = inputs.batch("train", index)
                    loss = _summed_loss(modules, activations, labels)
                    loss.backward()  # type: ignore[no-untyped-call]
                    optimizer.step()
                    loss_sum += loss.item() * len(index)
                    ticks.step()
                schedule.step()
                for head in modules:
                    head.eval()
                val_loss, val_accuracy = _evaluate_heads(modules, inputs, "val")
                history.append(ExitEpochStats(epoch, loss_sum / n, val_loss, val_accuracy))
                if best.stop(epoch, (-val_loss,)):
                    break
        best.restore()
        ticks.finish()
        _, test_accuracy = _evaluate_heads(modules, inputs, "test")
    return ExitTrainResult(
        history=tuple(history),
        best_epoch=best.epoch,
        val_accuracy=history[best.epoch - 1].val_accuracy,
        test_accuracy=test_accuracy,
        stopped_early=len(history) < epochs,
        cached=inputs.cached,
        seconds=time.perf_counter() - start,
    )


def _tensors(ds: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(ds.x).to(device), torch.from_numpy(ds.y).to(device)


def _batches(n: int, batch_size: int, shuffle: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches covering [0, n).

    A trailing batch of a single sample is dropped unless it is the only batch (that sample is
    seen in other epochs): BatchNorm in training mode cannot normalise one sample of 1x1 maps or
    vectors.
    """
    order = torch.randperm(n, generator=shuffle)
    for first in range(0, n, batch_size):
        index = order[first : first + batch_size]
        if len(index) == batch_size or len(index) > 1 or first == 0:
            yield index


def _early_stopping(
    modules: Sequence[nn.Module], patience: int
) -> EarlyStopping[list[dict[str, torch.Tensor]]]:
    def restore(states: list[dict[str, torch.Tensor]]) -> None:
        for module, state in zip(modules, states, strict=True):
            module.load_state_dict(state)

    return EarlyStopping(lambda: [_snapshot(m) for m in modules], restore, patience)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _evaluate(model: nn.Module, ds: Dataset, device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` (in eval mode) on `ds`."""
    x, y = _tensors(ds, device)
    loss_sum = 0.0
    correct = 0
    with torch.no_grad():
        for first in range(0, len(y), _EVAL_BATCH):
            logits = model(x[first : first + _EVAL_BATCH])
            labels = y[first : first + _EVAL_BATCH]
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += int((logits.argmax(1) == labels).sum())
    return loss_sum / len(y), correct / len(y)


class _ExitInputs:
    """The frozen backbone's activations at the exit cuts for each split, cached or recomputed.

    Cached when all splits' activations fit in `cache_limit_bytes`; otherwise every batch runs
    the backbone again (identical values, since the backbone is a fixed function).
    """

    def __init__(
        self, graph: CutGraph, cuts: list[int], splits: Splits, cache_limit_bytes: int
    ) -> None:
        self._taps = Taps(graph, cuts)
        device = module_device(graph.module)
        self._data = {
            name: _tensors(ds, device)
            for name, ds in (("train", splits.train), ("val", splits.val), ("test", splits.test))
        }
        per_sample = sum(graph.cut_points[k].activation_bytes for k in set(cuts))
        samples = sum(len(y) for _, y in self._data.values())
        self.cached = per_sample * samples <= cache_limit_bytes
        self._cache: dict[str, list[torch.Tensor]] = {}
        if self.cached:
            for name, (x, _) in self._data.items():
                chunks = [self._taps(x[i : i + _EVAL_BATCH]) for i in range(0, len(x), _EVAL_BATCH)]
                self._cache[name] = [torch.cat(parts) for parts in zip(*chunks, strict=True)]

    def size(self, split: str) -> int:
        return len(self._data[split][1])

    def batch(self, split: str, index: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Each head's input for the samples at `index` of `split`, and their labels."""
        x, y = self._data[split]
        if self.cached:
            return [a[index] for a in self._cache[split]], y[index]
        return self._taps(x[index]), y[index]


def _summed_loss(
    heads: Sequence[nn.Module], activations: list[torch.Tensor], labels: torch.Tensor
) -> torch.Tensor:
    losses = [F.cross_entropy(head(a), labels) for head, a in zip(heads, activations, strict=True)]
    return torch.stack(losses).sum()


def _evaluate_heads(
    heads: Sequence[nn.Module], inputs: _ExitInputs, split: str
) -> tuple[float, tuple[float, ...]]:
    """Mean summed cross-entropy of the heads (in eval mode) on `split`, and each accuracy."""
    n = inputs.size(split)
    loss_sum = 0.0
    correct = [0] * len(heads)
    with torch.no_grad():
        for first in range(0, n, _EVAL_BATCH):
            activations, labels = inputs.batch(
                split, torch.arange(first, min(first + _EVAL_BATCH, n))
            )
            for i, (head, a) in enumerate(zip(heads, activations, strict=True)):
                logits = head(a)
                loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
                correct[i] += int((logits.argmax(1) == labels).sum())
    return loss_sum / n, tuple(c / n for c in correct)
