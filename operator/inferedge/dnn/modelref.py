"""The framework-neutral half of resolving a model reference.

A reference is a zoo name, `package.module:callable` (a factory that gets `num_classes=` when
its signature takes it) or a path to a saved model. Importing the module and calling the
factory is the same for every framework; each backend checks what the factory returned and
loads its own file formats. Every failure is a one-line `ModelRefError`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

from inferedge.core.errors import ModelRefError, one_line


def call_factory(
    ref: str,
    num_classes: int,
    around: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> tuple[str, object]:
    """Import the `package.module:callable` named by `ref` and call it.

    Returns the attribute path (the model's name) and what the call returned, unchecked.
    `around()` is entered for the call, for a framework that needs state set while user code
    builds a model.
    """
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
        with around():
            model = target(**kwargs)
    except Exception as exc:  # the factory is user code
        raise ModelRefError(f"calling {ref!r} failed: {one_line(exc)}") from None
    return attr_path, model


def wrong_type(ref: str, found: object, expected: str) -> ModelRefError:
    """The error for a factory that returned something other than the framework's model."""
    return ModelRefError(f"{ref!r} returned a {type(found).__name__}, expected a {expected}")


def unknown_model(ref: str, zoo_names: Sequence[str], files: Sequence[str]) -> ModelRefError:
    """The error for a reference that is neither a zoo name nor any other accepted form;
    `files` are the saved-model forms the framework takes, e.g. "a .pt2 file"."""
    *others, last = ["a package.module:callable", *files]
    return ModelRefError(
        f"unknown model {ref!r}: not a zoo name ({', '.join(zoo_names)}), "
        f"{', '.join(others)} or {last}"
    )


def _accepts_num_classes(factory: Callable[..., object]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False
    return any(
        p.name == "num_classes" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
    )
