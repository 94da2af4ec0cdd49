"""Observations: per-sample confidence and correctness of every exit and the final classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from inferedge.core.calibration import Observations
from inferedge.core.errors import InferedgeError
from inferedge.core.roles import Role
from inferedge.dnn.data import Dataset
from inferedge.dnn.torch.graph import CutGraph, build_cut_graph
from inferedge.dnn.torch.observe import observe

CLASSES = 4


class Fixed(nn.Module):
    """A head that ignores its input and answers the same logits for every sample."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


@pytest.fixture(scope="module")
def graph() -> CutGraph:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, CLASSES),
    ).eval()
    return build_cut_graph(model, torch.zeros(1, 1, 6, 6), name="small")


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset(
        x=rng.normal(size=(10, 1, 6, 6)).astype(np.float32),
        y=np.arange(10, dtype=np.int64) % CLASSES,
        num_classes=CLASSES,
        name="random",
    )


def test_confidence_entropy_and_correctness_per_sample(graph: CutGraph, dataset: Dataset) -> None:
    uniform = Fixed([0.0] * CLASSES)
    sure_of_one = Fixed([0.0, 50.0, 0.0, 0.0])
    k = graph.num_cuts
    obs = observe(
        graph,
        [(1, "edge", uniform), (2, "cloud", sure_of_one)],
        k,
        dataset,
        split_name="val",
    )
    assert isinstance(obs, Observations)
    assert obs.split == "val"
    assert obs.num_samples == 10
    first, second = obs.exits
    assert (first.part, first.cut_index, second.part, second.cut_index) == ("edge", 1, "cloud", 2)
    assert first.max_softmax == pytest.approx([1 / CLASSES] * 10)
    assert first.entropy == pytest.approx([1.0] * 10)
    assert first.correct == tuple(y == 0 for y in dataset.y)  # argmax of a tie is class 0
    assert second.max_softmax == pytest.approx([1.0] * 10)
    assert second.entropy == pytest.approx([0.0] * 10, abs=1e-12)
    assert second.correct == tuple(y == 1 for y in dataset.y)
    # The final classifier is the backbone's own output.
    with torch.no_grad():
        logits = graph.module(torch.from_numpy(dataset.x)).double()
    p = logits.softmax(1)
    assert obs.final.cut_index == k
    assert obs.final.part == "cloud"
    assert obs.final.max_softmax == pytest.approx(p.max(1).values.tolist())
    entropy = (-(p * p.log()).sum(1) / math.log(CLASSES)).tolist()
    assert obs.final.entropy == pytest.approx(entropy)
    assert obs.final.correct == tuple((logits.argmax(1).numpy() == dataset.y).tolist())


def test_batching_does_not_change_observations(graph: CutGraph, dataset: Dataset) -> None:
    heads: list[tuple[int, Role, nn.Module]] = [
        (2, "edge", nn.Sequential(nn.Flatten(), nn.Linear(36, CLASSES)))
    ]
    whole = observe(graph, heads, graph.num_cuts, dataset, split_name="test", batch_size=256)
    pieces = observe(graph, heads, graph.num_cuts, dataset, split_name="test", batch_size=3)
    assert pieces.exits[0].correct == whole.exits[0].correct
    assert pieces.exits[0].max_softmax == pytest.approx(whole.exits[0].max_softmax)
    assert pieces.final.entropy == pytest.approx(whole.final.entropy)


def test_heads_run_in_eval_mode_and_keep_their_mode(graph: CutGraph, dataset: Dataset) -> None:
    head = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(36, CLASSES)).train()
    runs = [
        observe(graph, [(2, "edge", head)], graph.num_cuts, dataset, split_name="val")
        for _ in range(2)
    ]
    assert runs[0].exits[0].max_softmax == runs[1].exits[0].max_softmax  # no dropout noise
    assert head.training
    assert head[2].weight.requires_grad


@pytest.mark.parametrize(
    ("heads", "final_cut", "message"),
    [
        ([], 2, "final classifier at cut 2: only the backbone's own classifier"),
        ([(2, "edge"), (1, "edge")], None, "exit at cut 1: exits must be in path order"),
        ([(1, "edge"), (1, "cloud")], None, "exit at cut 1: exits must be in path order"),
        ([(0, "edge")], None, "exit at cut 0: exits must be in path order"),
        ([(5, "edge")], None, "exit at cut 5: exits must be in path order"),
        ([(1, "fog")], None, "part must be 'edge' or 'cloud', got 'fog'"),
        ([(1, "cloud"), (2, "edge")], None, "exit at cut 2: an edge exit cannot follow a cloud"),
    ],
)
def test_bad_exit_lists_are_rejected(
    graph: CutGraph,
    dataset: Dataset,
    heads: list[tuple[int, str]],
    final_cut: int | None,
    message: str,
) -> None:
    modules = [(cut, part, Fixed([0.0] * CLASSES)) for cut, part in heads]
    with pytest.raises(InferedgeError, match=message):
        observe(
            graph,
            modules,  # type: ignore[arg-type]
            graph.num_cuts if final_cut is None else final_cut,
            dataset,
            split_name="val",
        )
