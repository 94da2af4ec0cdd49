"""A trained backbone's weights on disk: a state dict plus what model it belongs to.

The file is a `torch.save`d dict of plain values and tensors only, so it loads with
`weights_only=True` (no pickled code runs). Loading checks the recorded model first, then every
key and shape, so a file of another model fails with one line saying how it differs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from inferedge.core.errors import InferedgeError, one_line

FORMAT = "inferedge.weights/v1"


class WeightsError(InferedgeError):
    """A weights file is missing, unreadable, or belongs to another model."""


@dataclass(frozen=True)
class WeightsInfo:
    """The model a weights file belongs to, and the torch version that wrote it."""

    model_ref: str
    num_classes: int
    input_shape: tuple[int, ...]
    torch_version: str

    def describe(self) -> str:
        """`ref (N classes, CxHxW)`, for messages."""
        shape = "x".join(str(d) for d in self.input_shape)
        return f"{self.model_ref!r} ({self.num_classes} classes, {shape})"


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
        "format": FORMAT,
        "model_ref": info.model_ref,
        "num_classes": info.num_classes,
        "input_shape": list(info.input_shape),
        "torch_version": info.torch_version,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    torch.save(payload, partial)
    # A reader never sees a half-written file under the final name.
    os.replace(partial, path)
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
    expected = WeightsInfo(model_ref, num_classes, tuple(input_shape), info.torch_version)
    if info != expected:
        raise WeightsError(
            f"{path}: holds weights of model {info.describe()}, not {expected.describe()}"
        )
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
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for foreign or corrupt files
        raise WeightsError(f"{path}: not a readable weights file ({one_line(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeightsError(f"{path}: not an inferedge weights file (format {FORMAT!r})")
    model_ref = payload.get("model_ref")
    num_classes = payload.get("num_classes")
    input_shape = payload.get("input_shape")
    torch_version = payload.get("torch_version")
    state = payload.get("state_dict")
    if not (
        isinstance(model_ref, str)
        and isinstance(num_classes, int)
        and isinstance(input_shape, list)
        and all(isinstance(d, int) for d in input_shape)
        and isinstance(torch_version, str)
        and isinstance(state, dict)
        and all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        raise WeightsError(f"{path}: malformed inferedge weights file (metadata or state dict)")
    return WeightsInfo(model_ref, num_classes, tuple(input_shape), torch_version), state
