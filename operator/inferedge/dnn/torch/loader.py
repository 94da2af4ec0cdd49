"""Resolve a model reference to a torch module in eval mode.

A reference is one of: a zoo name (`resnet18`), `package.module:callable` (a factory returning an
`nn.Module`; it gets `num_classes=` when its signature takes it) or a path to a `torch.export`
program ending in `.pt2`. Every failure is a one-line `ModelRefError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torch import nn

from inferedge.core.errors import ModelRefError, one_line
from inferedge.dnn.modelref import call_factory, unknown_model, wrong_type
from inferedge.dnn.protocols import ArtifactLoadError
from inferedge.dnn.torch import zoo
from inferedge.dnn.torch.program import load_program

RefKind = Literal["zoo", "callable", "export"]


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to trace and run, and how it was referenced."""

    name: str
    source: str
    kind: RefKind
    module: nn.Module


def load_model(ref: str, num_classes: int, input_shape: tuple[int, ...]) -> LoadedModel:
    """Load the model named by `ref` and put it in eval mode.

    `num_classes` and `input_shape` (per sample, e.g. (3, 32, 32)) configure zoo models and
    factories that take `num_classes`; an exported program carries its own.
    """
    if ref.endswith(".pt2"):
        return _load_export(ref)
    if ":" in ref:
        return _load_callable(ref, num_classes)
    return _load_zoo(ref, num_classes, input_shape)


def _load_zoo(ref: str, num_classes: int, input_shape: tuple[int, ...]) -> LoadedModel:
    if ref not in zoo.ZOO_NAMES:
        raise unknown_model(ref, zoo.ZOO_NAMES, ["a .pt2 file"])
    if len(input_shape) != 3 or input_shape[0] != 3 or input_shape[1] != input_shape[2]:
        raise ModelRefError(
            f"zoo model {ref!r} takes square RGB images (3, N, N), got input shape {input_shape}"
        )
    # The side length picks the architecture's variant, e.g. a CIFAR or an ImageNet stem.
    module = zoo.build_model(ref, num_classes=num_classes, input_size=input_shape[-1])
    return LoadedModel(name=ref, source=ref, kind="zoo", module=module.eval())


def _load_callable(ref: str, num_classes: int) -> LoadedModel:
    name, module = call_factory(ref, num_classes)
    if not isinstance(module, nn.Module):
        raise wrong_type(ref, module, "torch.nn.Module")
    return LoadedModel(name=name, source=ref, kind="callable", module=module.eval())


def _load_export(ref: str) -> LoadedModel:
    path = Path(ref)
    if not path.is_file():
        raise ModelRefError(f"model file {ref!r} does not exist")
    try:
        program = load_program(path, f"model file {ref!r}")
    except ArtifactLoadError as exc:
        raise ModelRefError(str(exc)) from None
    try:
        module = program.module()
    except Exception as exc:  # a malformed graph can fail in many ways inside torch.fx
        raise ModelRefError(f"model file {ref!r}: {one_line(exc)}") from None
    # An exported module keeps the train/eval behaviour it was exported with; it refuses .eval().
    return LoadedModel(name=path.stem, source=ref, kind="export", module=module)
