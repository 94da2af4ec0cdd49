"""How sure a classifier is, in numpy: the formula of `inferedge.dnn.torch.confidence`.

Calibration chooses a threshold on these numbers and serving compares against it, so both must
compute them identically, whatever framework produced the logits: in float64, from
log-softmax, the entropy normalised by log(number of classes) and clamped to [0, 1].
"""

from __future__ import annotations

import math

import numpy as np


def softmax_stats(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the largest softmax probability, the entropy normalised to [0, 1], the argmax."""
    z = np.asarray(logits, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    prediction = p.argmax(axis=1)
    top = p[np.arange(len(p)), prediction]
    num_classes = z.shape[1]
    # With one class there is nothing to be unsure about: the entropy is 0.
    scale = math.log(num_classes) if num_classes > 1 else 1.0
    entropy = np.clip(-(p * log_p).sum(axis=1) / scale, 0.0, 1.0)
    return top, entropy, prediction
