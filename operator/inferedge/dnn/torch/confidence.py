"""How sure a classifier is: the one formula calibration and serving must share."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def softmax_stats(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: the largest softmax probability, the entropy normalised to [0, 1], the argmax.

    Computed in float64 so that a threshold chosen offline means the same thing when serving.
    """
    log_p = F.log_softmax(logits.double(), dim=1)
    p = log_p.exp()
    top, prediction = p.max(dim=1)
    num_classes = logits.shape[1]
    # With one class there is nothing to be unsure about: the entropy is 0.
    scale = math.log(num_classes) if num_classes > 1 else 1.0
    entropy = (-(p * log_p).sum(1) / scale).clamp(0.0, 1.0)
    return top, entropy, prediction
