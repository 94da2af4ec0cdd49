"""Resolve a model reference to a torch module in eval mode.

A reference is one of: a zoo name (`resnet18`), `package.module:callable` (a factory returning an
`nn.Module`; it gets `num_classes=` when its signature takes it) or a path to a `torch.export`
program ending in `.pt2`. Every failure is a one-line `ModelRefError`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from inferedge.core.errors import ModelRefError, one_line
from inferedge.dnn.torch import zoo

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
        raise ModelRefError(
            f"unknown model {ref!r}: not a zoo name ({', '.join(zoo.ZOO_NAMES)}), "
            "a package.module:callable or a .pt2 file"
        )
    if len(input_shape) != 3 or input_shape[0] != 3 or input_shape[1] != input_shape[2]:
        raise ModelRefError(
            f"zoo model {ref!r} takes square RGB images (3, N, N), got input shape {input_shape}"
        )
    # The side length picks the architecture's variant, e.g. a CIFAR or an ImageNet stem.
    module = zoo.build_model(ref, num_classes=num_classes, input_size=input_shape[-1])
    return LoadedModel(name=ref, source=ref, kind="zoo", module=module.eval())


def _load_callable(ref: str, num_classes: int) -> LoadedModel:
    module_name, _, attr_path = ref.partition(":")
    if not module_name or not attr_path:
        raise ModelRefError(f"model reference {ref!r} must look like package.module:callable")
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:  # importing runs arbitrary user code
        raise ModelRefError(
            f"cannot import module {module_name!r} for model {ref!r}: {one_line(exc)}"
        ) from None
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise ModelRefError(f"module {module_name!r} has no attribute {attr_path!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ModelRefError(f"{ref!r} is not callable (it is a {type(target).__name__})")
    kwargs = {"num_classes": num_classes} if _accepts_num_classes(target) else {}
    try:
        module = target(**kwargs)
    except Exception as exc:  # the factory is user code
        raise ModelRefError(f"calling {ref!r} failed: {one_line(exc)}") from None
    if not isinstance(module, nn.Module):
        raise ModelRefError(
            f"{ref!r} returned a {type(module).__name__}, expected a torch.nn.Module"
        )
    return LoadedModel(name=attr_path, source=ref, kind="callable", module=module.eval())


def _accepts_num_classes(factory: Callable[..., object]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False
    return any(
        p.name == "num_classes" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
    )


def _load_export(ref: str) -> LoadedModel:
    path = Path(ref)
    if not path.is_file():
        raise ModelRefError(f"model file {ref!r} does not exist")
    try:
        program = torch.export.load(path)
    except Exception as exc:  # a corrupt or foreign file can fail anywhere in the loader
        raise ModelRefError(f"{ref!r} is not a torch.export program: {one_line(exc)}") from None
    # An exported module keeps the train/eval behaviour it was exported with; it refuses .eval().
    return LoadedModel(name=path.stem, source=ref, kind="export", module=program.module())
