"""What every exit and the final classifier say about every sample of a labelled split.

The result, `core.calibration.Observations`, is all threshold calibration needs; it is the same
type, computed by the same formula (`confidence.softmax_stats`), as the torch backend's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from inferedge.core.calibration import ExitObservations, Observations
from inferedge.core.errors import InferedgeError
from inferedge.dnn.data import Dataset
from inferedge.dnn.tensorflow.confidence import softmax_stats
from inferedge.dnn.tensorflow.graph import CutGraph
from inferedge.dnn.tensorflow.layout import batch_to_internal
from inferedge.dnn.tensorflow.run import Taps, compiled

Part = Literal["edge", "cloud"]
_PARTS: tuple[Part, ...] = ("edge", "cloud")


class _Collector:
    """Per-sample max softmax, normalised entropy and correctness of one classifier."""

    def __init__(self, part: Part, cut: int) -> None:
        self.part = part
        self.cut = cut
        self.max_softmax: list[float] = []
        self.entropy: list[float] = []
        self.correct: list[bool] = []

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        top, entropy, prediction = softmax_stats(logits)
        self.max_softmax += top.tolist()
        self.entropy += entropy.tolist()
        self.correct += (prediction == labels).tolist()

    def result(self) -> ExitObservations:
        return ExitObservations(
            part=self.part,
            cut_index=self.cut,
            max_softmax=tuple(self.max_softmax),
            entropy=tuple(self.entropy),
            correct=tuple(self.correct),
        )


def observe(
    graph: CutGraph,
    heads: Sequence[tuple[int, Part, Any]],
    final_cut: int,
    dataset: Dataset,
    *,
    split_name: str,
    batch_size: int = 256,
    final_part: Part = "cloud",
) -> Observations:
    """Run the backbone and its exit heads over `dataset` and record what each one says.

    `heads` are `(cut index, part, head)` in path order: strictly increasing cuts, the edge
    exits before the cloud exits. The final classifier is the backbone's own output, so
    `final_cut` must be the last cut point K; `final_part` is where it runs. Everything runs in
    inference mode, so nothing changes.
    """
    _check(graph, heads, final_cut, final_part)
    if batch_size < 1:
        raise InferedgeError(f"observe: batch_size must be >= 1, got {batch_size}")
    taps = Taps(graph, [cut for cut, _, _ in heads] + [final_cut])
    runs = [compiled(head, graph.internal_shape(cut)) for cut, _, head in heads]
    collectors = [_Collector(part, cut) for cut, part, _ in heads]
    final = _Collector(final_part, final_cut)
    x = batch_to_internal(dataset.x)
    for first in range(0, len(dataset), batch_size):
        labels = dataset.y[first : first + batch_size]
        *activations, logits = taps(x[first : first + batch_size])
        for collector, run, a in zip(collectors, runs, activations, strict=True):
            collector.add(np.asarray(run(a)), labels)
        final.add(logits, labels)
    return Observations(
        split=split_name, exits=tuple(c.result() for c in collectors), final=final.result()
    )


def _check(
    graph: CutGraph, heads: Sequence[tuple[int, Part, Any]], final_cut: int, final_part: str
) -> None:
    if final_cut != graph.num_cuts:
        raise InferedgeError(
            f"final classifier at cut {final_cut}: only the backbone's own classifier at its last "
            f"cut point ({graph.num_cuts}) is supported so far"
        )
    previous = 0
    seen_cloud = False
    for cut, part, _ in heads:
        where = f"exit at cut {cut}"
        if part not in _PARTS:
            raise InferedgeError(f"{where}: part must be 'edge' or 'cloud', got {part!r}")
        if not previous < cut < final_cut:
            raise InferedgeError(
                f"{where}: exits must be in path order at distinct cuts between 1 and "
                f"{final_cut - 1}"
            )
        if part == "edge" and seen_cloud:
            raise InferedgeError(f"{where}: an edge exit cannot follow a cloud exit")
        seen_cloud = seen_cloud or part == "cloud"
        previous = cut
    if final_part not in _PARTS:
        raise InferedgeError(f"final_part must be 'edge' or 'cloud', got {final_part!r}")
    if final_part == "edge" and seen_cloud:
        raise InferedgeError("the final classifier cannot run on the edge after a cloud exit")
