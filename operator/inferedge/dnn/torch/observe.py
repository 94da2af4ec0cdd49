"""What every exit and the final classifier of a torch backbone say about a labelled split.

The bookkeeping is `inferedge.dnn.observing`'s; this runs the backbone and heads in eval mode
and computes their confidences with torch's `softmax_stats`, the formula the runtime serves with.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from inferedge.core.calibration import Observations
from inferedge.core.roles import Role
from inferedge.dnn.data import Dataset
from inferedge.dnn.observing import Confidences, check_exit_path, record_observations
from inferedge.dnn.torch.confidence import softmax_stats
from inferedge.dnn.torch.exits import Taps, frozen
from inferedge.dnn.torch.graph import CutGraph


def observe(
    graph: CutGraph,
    heads: Sequence[tuple[int, Role, nn.Module]],
    final_cut: int,
    dataset: Dataset,
    *,
    split_name: str,
    batch_size: int = 256,
    final_part: Role = "cloud",
) -> Observations:
    """Run the backbone and its exit heads over `dataset` and record what each one says.

    `heads` are `(cut index, part, head)` in path order: strictly increasing cuts, the edge
    exits before the cloud exits. The final classifier is the backbone's own output, so
    `final_cut` must be the last cut point K; `final_part` is where it runs. The backbone and
    heads run in eval mode and are left as they were.
    """
    exits = [(cut, part) for cut, part, _ in heads]
    check_exit_path(exits, final_cut, final_part, num_cuts=graph.num_cuts, batch_size=batch_size)
    taps = Taps(graph, [cut for cut, _ in exits] + [final_cut])
    x = torch.from_numpy(dataset.x)

    def classify(batch: slice) -> list[Confidences]:
        *activations, logits = taps(x[batch])
        with torch.no_grad():
            outputs = [head(a) for (_, _, head), a in zip(heads, activations, strict=True)]
        return [_confidences(output) for output in [*outputs, logits]]

    with frozen(graph.module, *(head for _, _, head in heads)):
        return record_observations(
            exits,
            (final_cut, final_part),
            dataset.y,
            classify,
            split_name=split_name,
            batch_size=batch_size,
        )


def _confidences(logits: torch.Tensor) -> Confidences:
    top, entropy, prediction = softmax_stats(logits)
    return top.cpu().numpy(), entropy.cpu().numpy(), prediction.cpu().numpy()
