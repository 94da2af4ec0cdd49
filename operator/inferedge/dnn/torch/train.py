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

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from inferedge.core.errors import InferedgeError
from inferedge.core.progress import ProgressCallback
from inferedge.dnn.data import Dataset, Splits
from inferedge.dnn.torch.exits import Taps, frozen, module_device
from inferedge.dnn.torch.graph import CutGraph
from inferedge.dnn.training import (
    EarlyStopping,
    ExitInputs,
    ExitTrainResult,
    Loop,
    TrainingRun,
    TrainResult,
    cache_fits,
    mean_scores,
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
    run = TrainingRun(
        epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, progress=progress
    )
    device = module_device(model)
    x, y = _tensors(splits.train, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    best = _early_stopping([model], patience)

    def train_step(index: torch.Tensor) -> float:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x[index]), y[index])
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        return loss.item()

    def begin_epoch(_: int) -> None:
        model.train()

    def end_epoch() -> None:
        schedule.step()
        model.eval()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        loop = Loop(
            shuffle=lambda n: torch.randperm(n, generator=generator),
            train_step=train_step,
            validate=lambda: _evaluate(model, splits.val, device),
            test=lambda: _evaluate(model, splits.test, device)[1],
            begin_epoch=begin_epoch,
            end_epoch=end_epoch,
        )
        return run.backbone(loop, best, len(y))


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
    run = TrainingRun(
        epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, progress=progress
    )
    if not heads:
        raise InferedgeError("exit training needs at least one exit head")
    modules = [head for _, head in heads]
    optimizer = torch.optim.Adam([p for head in modules for p in head.parameters()], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    best = _early_stopping(modules, patience)
    with frozen(graph.module):
        inputs = _exit_inputs(graph, [cut for cut, _ in heads], splits, cache_limit_bytes)

        def train_step(index: torch.Tensor) -> float:
            optimizer.zero_grad()
            activations, labels = inputs.batch("train", index)
            loss = _summed_loss(modules, activations, labels)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            return loss.item()

        def begin_epoch(_: int) -> None:
            for head in modules:
                head.train()

        def end_epoch() -> None:
            schedule.step()
            for head in modules:
                head.eval()

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            loop = Loop(
                shuffle=lambda n: torch.randperm(n, generator=generator),
                train_step=train_step,
                validate=lambda: _evaluate_heads(modules, inputs, "val"),
                test=lambda: _evaluate_heads(modules, inputs, "test")[1],
                begin_epoch=begin_epoch,
                end_epoch=end_epoch,
            )
            return run.exits(loop, best, inputs.size("train"), cached=inputs.cached)


def _tensors(ds: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(ds.x).to(device), torch.from_numpy(ds.y).to(device)


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
    with torch.no_grad():
        loss, (accuracy,) = mean_scores(
            len(y), _EVAL_BATCH, lambda batch: [_scores(model(x[batch]), y[batch])]
        )
    return loss, accuracy


def _scores(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
    """Summed cross-entropy and the number of right predictions."""
    loss = F.cross_entropy(logits, labels, reduction="sum").item()
    return loss, int((logits.argmax(1) == labels).sum())


def _exit_inputs(
    graph: CutGraph, cuts: list[int], splits: Splits, cache_limit_bytes: int
) -> ExitInputs[torch.Tensor]:
    taps = Taps(graph, cuts)
    device = module_device(graph.module)

    def tap_all(x: torch.Tensor) -> list[torch.Tensor]:
        chunks = [taps(x[i : i + _EVAL_BATCH]) for i in range(0, len(x), _EVAL_BATCH)]
        return [torch.cat(parts) for parts in zip(*chunks, strict=True)]

    samples = sum(len(ds) for _, ds in splits.named())
    return ExitInputs(
        {name: _tensors(ds, device) for name, ds in splits.named()},
        taps,
        tap_all,
        cached=cache_fits(graph.cut_points, cuts, samples, cache_limit_bytes),
    )


def _summed_loss(
    heads: Sequence[nn.Module], activations: Sequence[torch.Tensor], labels: torch.Tensor
) -> torch.Tensor:
    losses = [F.cross_entropy(head(a), labels) for head, a in zip(heads, activations, strict=True)]
    return torch.stack(losses).sum()


def _evaluate_heads(
    heads: Sequence[nn.Module], inputs: ExitInputs[torch.Tensor], split: str
) -> tuple[float, tuple[float, ...]]:
    """Mean summed cross-entropy of the heads (in eval mode) on `split`, and each accuracy."""

    def scores(batch: slice) -> list[tuple[float, int]]:
        activations, labels = inputs.batch(split, torch.arange(batch.start, batch.stop))
        return [_scores(head(a), labels) for head, a in zip(heads, activations, strict=True)]

    with torch.no_grad():
        return mean_scores(inputs.size(split), _EVAL_BATCH, scores)
