"""Liveness over the layer calls of a functional graph: where one tensor alone is live.

A cut point is a position after which exactly one tensor is live, so the sweep here finds the
candidates: inside a residual or inception block the skip tensors are live next to the main
path, so no candidate lands there. It also measures the activation memory one sample holds
while each call runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferedge.dnn.tensorflow.functional import LayerCall
from inferedge.dnn.tensorflow.layout import Shape


@dataclass(frozen=True)
class TensorInfo:
    """What the sweep needs of one tensor: per-sample shape (channels-last) and size."""

    shape: Shape | None  # None when a size other than the batch is unknown
    dtype: str
    nbytes: int  # one sample's bytes; 0 when the shape is unknown


def _tensor_info(kt: Any) -> TensorInfo:
    dims = tuple(kt.shape[1:])
    dtype = str(kt.dtype)
    # A fixed batch size of 1 (Input(batch_size=1)) still leaves one sample per batch.
    batched = len(kt.shape) >= 1 and kt.shape[0] in (None, 1)
    if not batched or any(d is None for d in dims) or len(dims) == 0:
        return TensorInfo(None, dtype, 0)
    shape = tuple(int(d) for d in dims)
    return TensorInfo(shape, dtype, int(np.prod(shape)) * np.dtype(dtype).itemsize)


class Liveness:
    """Liveness and sizes over the layer calls of a functional graph."""

    def __init__(self, calls: list[LayerCall], output: int) -> None:
        self.calls = calls
        self.tensors: dict[int, TensorInfo] = {}
        self.keras_tensors: dict[int, Any] = {}
        for call in calls:
            for kt in call.outputs:
                self.tensors[id(kt)] = _tensor_info(kt)
                self.keras_tensors[id(kt)] = kt
        # The model's output is read by the caller, after the last call.
        self.last_use = {output: len(calls)}
        for pos, call in enumerate(calls):
            for used in call.inputs:
                self.last_use[used] = max(self.last_use.get(used, -1), pos)

    def sweep(self) -> tuple[list[tuple[Any, int]], list[int]]:
        """Positions after which one batch-of-one tensor alone is live (each tensor once, at its
        first such position), and the activation memory held while each call runs."""
        live: dict[int, None] = {}  # insertion-ordered set
        running: list[int] = []
        candidates: list[tuple[Any, int]] = []
        seen: set[int] = set()
        for pos, call in enumerate(self.calls):
            produced = [id(kt) for kt in call.outputs]
            running.append(self.held_bytes([*live, *produced]))
            for value in produced:
                if self.last_use.get(value, -1) > pos:
                    live[value] = None
            for used in call.inputs:
                if used in live and self.last_use[used] == pos:
                    del live[used]
            if len(live) == 1:
                (value,) = live
                if value not in seen and self.tensors[value].shape is not None:
                    seen.add(value)
                    candidates.append((self.keras_tensors[value], pos))
        return candidates, running

    def held_bytes(self, values: Iterable[int]) -> int:
        """Bytes of one sample's tensors among `values`, each counted once."""
        return sum(self.tensors[v].nbytes for v in set(values) if v in self.tensors)

    def producer(self, kt: Any) -> str:
        """The name of the call that wrote `kt`."""
        for call in self.calls:
            if any(out is kt for out in call.outputs):
                return call.name
        raise KeyError(kt)
