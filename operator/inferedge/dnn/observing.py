"""What every exit and the final classifier say about every sample of a labelled split.

The result, `core.calibration.Observations`, is all that threshold calibration needs: from here
on everything is pure arithmetic in `inferedge.core`. A backend runs its backbone and heads and
turns their logits into confidences with its `softmax_stats`, the formula serving uses; this
module checks the exit path and records, per classifier and sample, the max softmax, the
normalised entropy and whether the prediction was right.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from inferedge.core.calibration import ExitObservations, Observations
from inferedge.core.errors import InferedgeError
from inferedge.core.roles import ROLES, Role

Confidences = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Per sample of a batch: the largest softmax probability, the normalised entropy, the argmax."""


def check_exit_path(
    exits: Sequence[tuple[int, str]],
    final_cut: int,
    final_part: str,
    *,
    num_cuts: int,
    batch_size: int,
) -> None:
    """`InferedgeError` unless `exits`, `(cut index, part)` pairs, lie in path order before the
    backbone's own classifier at its last cut `num_cuts`, edge exits first, and `batch_size`
    is positive."""
    if final_cut != num_cuts:
        raise InferedgeError(
            f"final classifier at cut {final_cut}: only the backbone's own classifier at its last "
            f"cut point ({num_cuts}) is supported so far"
        )
    previous = 0
    seen_cloud = False
    for cut, part in exits:
        where = f"exit at cut {cut}"
        if part not in ROLES:
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
    if final_part not in ROLES:
        raise InferedgeError(f"final_part must be 'edge' or 'cloud', got {final_part!r}")
    if final_part == "edge" and seen_cloud:
        raise InferedgeError("the final classifier cannot run on the edge after a cloud exit")
    if batch_size < 1:
        raise InferedgeError(f"observe: batch_size must be >= 1, got {batch_size}")


def record_observations(
    exits: Sequence[tuple[int, Role]],
    final: tuple[int, Role],
    labels: np.ndarray,
    classify: Callable[[slice], Sequence[Confidences]],
    *,
    split_name: str,
    batch_size: int,
) -> Observations:
    """Walk the split in batches of `batch_size` and record what each classifier says.

    `classify(batch)` runs the samples at `batch` through the backbone and returns the
    confidences of each exit in `exits` (`(cut index, part)`, in order), then those of the
    final classifier `final`.
    """
    records = [_Record(part, cut) for cut, part in [*exits, final]]
    for first in range(0, len(labels), batch_size):
        batch = slice(first, first + batch_size)
        for record, confidences in zip(records, classify(batch), strict=True):
            record.add(confidences, labels[batch])
    *exit_records, final_record = records
    return Observations(
        split=split_name,
        exits=tuple(r.result() for r in exit_records),
        final=final_record.result(),
    )


class _Record:
    """Per-sample max softmax, normalised entropy and correctness of one classifier."""

    def __init__(self, part: Role, cut: int) -> None:
        self.part = part
        self.cut = cut
        self.max_softmax: list[float] = []
        self.entropy: list[float] = []
        self.correct: list[bool] = []

    def add(self, confidences: Confidences, labels: np.ndarray) -> None:
        top, entropy, prediction = confidences
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
