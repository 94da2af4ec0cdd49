"""What every exit and the final classifier of a Keras backbone say about a labelled split.

The bookkeeping is `inferedge.dnn.observing`'s, as for torch; this runs the backbone and the
compiled heads in inference mode (so nothing changes) and computes their confidences with
`confidence.softmax_stats`, the same formula as the torch backend's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from inferedge.core.calibration import Observations
from inferedge.core.roles import Role
from inferedge.dnn.confidence import softmax_stats
from inferedge.dnn.data import Dataset
from inferedge.dnn.observing import Confidences, check_exit_path, record_observations
from inferedge.dnn.tensorflow.graph import CutGraph
from inferedge.dnn.tensorflow.layout import batch_to_internal
from inferedge.dnn.tensorflow.run import Taps, compiled


def observe(
    graph: CutGraph,
    heads: Sequence[tuple[int, Role, Any]],
    final_cut: int,
    dataset: Dataset,
    *,
    split_name: str,
    batch_size: int = 256,
    final_part: Role = "cloud",
) -> Observations:
    """Run the Keras backbone and its exit heads over `dataset`, as the torch backend's
    `observe` does: the same argument rules and the same `Observations`. The heads take
    channels-last activations, as `exits.render_head` builds them.
    """
    exits = [(cut, part) for cut, part, _ in heads]
    check_exit_path(exits, final_cut, final_part, num_cuts=graph.num_cuts, batch_size=batch_size)
    taps = Taps(graph, [cut for cut, _ in exits] + [final_cut])
    runs = [compiled(head, graph.internal_shape(cut)) for cut, _, head in heads]
    x = batch_to_internal(dataset.x)

    def classify(batch: slice) -> list[Confidences]:
        *activations, logits = taps(x[batch])
        outputs = [np.asarray(run(a)) for run, a in zip(runs, activations, strict=True)]
        return [softmax_stats(output) for output in [*outputs, logits]]

    return record_observations(
        exits,
        (final_cut, final_part),
        dataset.y,
        classify,
        split_name=split_name,
        batch_size=batch_size,
    )
