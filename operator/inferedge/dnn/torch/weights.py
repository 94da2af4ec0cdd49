"""A trained backbone's weights on disk: a state dict plus what model it belongs to.

The file is a `torch.save`d dict of plain values and tensors only, so it loads with
`weights_only=True` (no pickled code runs): `inferedge.dnn.weights`' metadata, and the state
dict under `state_dict`. Loading checks the recorded model first, then every key and shape, so a
file of another model fails with one line saying how it differs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from inferedge.dnn.weights import (
    WeightsError,
    WeightsInfo,
    check_belongs,
    malformed,
    parse_metadata,
    read_file,
    write_atomically,
)

# WeightsInfo and WeightsError are the neutral ones; callers of this backend import them here.
__all__ = ["WeightsError", "WeightsInfo", "load_weights", "read_weights_info", "save_weights"]

_VERSION_KEY = "torch_version"
# The torch payload holds the state dict beside the metadata; both are checked in one go.
_CONTENTS = "metadata or state dict"


def save_weights(
    model: nn.Module,
    path: Path,
    *,
    model_ref: str,
    num_classes: int,
    input_shape: tuple[int, ...],
) -> WeightsInfo:
    """Write `model`'s state dict to `path` with its metadata, atomically; return the metadata."""
    info = WeightsInfo(model_ref, num_classes, tuple(input_shape), str(torch.__version__))
    payload = {
        **info.metadata(_VERSION_KEY),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    write_atomically(path, lambda partial: torch.save(payload, partial))
    return info


def read_weights_info(path: Path) -> WeightsInfo:
    """The metadata of the weights file at `path`."""
    info, _ = _read(path)
    return info


def load_weights(
    model: nn.Module,
    path: Path,
    *,
    model_ref: str,
    num_classes: int,
    input_shape: tuple[int, ...],
) -> WeightsInfo:
    """Load the weights at `path` into `model`, which must be the model the file was saved from.

    Raises `WeightsError` for a missing or foreign file, another model, or keys and shapes that
    do not fit `model`; `model` is unchanged then.
    """
    info, state = _read(path)
    check_belongs(path, info, model_ref=model_ref, num_classes=num_classes, input_shape=input_shape)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            raise WeightsError(f"{path}: does not fit the model: {label} key {keys[0]!r}{more}")
    for key, tensor in own.items():
        if state[key].shape != tensor.shape:
            raise WeightsError(
                f"{path}: {key}: shape {tuple(state[key].shape)} in the file, "
                f"{tuple(tensor.shape)} in the model"
            )
    model.load_state_dict(state)
    return info


def _read(path: Path) -> tuple[WeightsInfo, dict[str, torch.Tensor]]:
    # torch.load raises many types for foreign or corrupt files.
    payload = read_file(path, lambda p: torch.load(p, map_location="cpu", weights_only=True))
    info = parse_metadata(path, payload, _VERSION_KEY, contents=_CONTENTS)
    state = payload.get("state_dict")
    if not (isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise malformed(path, _CONTENTS)
    return info, state
