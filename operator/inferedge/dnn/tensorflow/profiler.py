"""Measure every segment of a cut Keras model at every batch size.

The measurement itself is `inferedge.dnn.profiling`'s, as for torch: each segment is compiled
once (its first, untimed run also traces it), and the device is synchronised around each timed
run when TensorFlow uses a GPU. Peak memory is the liveness analysis's estimate of the
activation bytes held at once, linear in the batch size.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from inferedge.core.profile import Segment
from inferedge.core.progress import ProgressCallback
from inferedge.dnn.energy import EnergySensor
from inferedge.dnn.profiling import SEED, Sync, measure_chain, no_sync
from inferedge.dnn.protocols import ProfileRequest
from inferedge.dnn.tensorflow.device import has_gpu
from inferedge.dnn.tensorflow.graph import CutGraph
from inferedge.dnn.tensorflow.layout import to_internal
from inferedge.dnn.tensorflow.run import compiled


def random_input(input_shape: tuple[int, ...], batch_size: int) -> np.ndarray:
    """The same random batch (channels-last) on every call, so profiles are reproducible."""
    rng = np.random.default_rng(SEED)
    return rng.standard_normal((batch_size, *to_internal(input_shape))).astype(np.float32)


def measure_segments(
    graph: CutGraph,
    request: ProfileRequest,
    *,
    model_name: str,
    sensor: EnergySensor | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[Segment, ...]:
    """Measure segments 1..K of `graph` as `request` asks."""
    parts = [
        compiled(graph.segment(i), graph.internal_shape(i - 1))
        for i in range(1, graph.num_cuts + 1)
    ]
    return measure_chain(
        parts,
        graph.cut_points,
        request,
        first_input=lambda batch_size: tf.constant(random_input(request.input_shape, batch_size)),
        peak_bytes_per_sample=graph.segment_peak_bytes,
        model_name=model_name,
        sync=_synchronizer(),
        sensor=sensor,
        progress=progress,
    )


def _synchronizer() -> Sync:
    # On a CPU a tf.function returns when its work is done; a GPU queues kernels.
    if has_gpu():
        return tf.experimental.sync_devices  # type: ignore[no-any-return]
    return no_sync
