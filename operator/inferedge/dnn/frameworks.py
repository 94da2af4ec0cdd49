"""The framework table: which backend and workflow serve each framework, imported on demand.

The interfaces and value types live in `inferedge.dnn.protocols`, which imports no framework;
this module is the only place that names the framework packages, and imports them only when a
caller asks for one, so the CLI starts fast and the operator image needs neither.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from inferedge.core.errors import InferedgeError, one_line
from inferedge.dnn.protocols import Backend, Workflow

FRAMEWORKS = ("torch", "tensorflow")

# What TensorFlow's native code prints while it is imported: absl's notice that logging is not
# set up yet, and INFO lines (oneDNN) that TF_CPP_MIN_LOG_LEVEL does not reach.
_IMPORT_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    r"STDERR|I\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] .*)$"
)


@contextmanager
def quiet_native_import() -> Iterator[None]:
    """Keep a framework's native start-up lines off stderr while it is imported.

    They come from C++ before Python's logging exists, so only the file descriptor can hold
    them back; a command that fails must still print exactly one line. Whatever else was
    written meanwhile (warnings, errors) is passed on.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to protect
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
            kept = [
                line
                for line in text.splitlines(keepends=True)
                if not _IMPORT_NOISE.match(line.rstrip("\n"))
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


_PACKAGES = {"torch": "PyTorch", "tensorflow": "TensorFlow"}


def _missing(framework: str, exc: ImportError) -> InferedgeError:
    return InferedgeError(
        f"the {framework} backend needs {_PACKAGES[framework]} ({one_line(exc)}); "
        f"install it with: pip install 'inferedge[{framework}]'"
    )


def _unknown(framework: str) -> InferedgeError:
    return InferedgeError(
        f"unknown framework {framework!r}; expected one of {', '.join(FRAMEWORKS)}"
    )


def get_backend(framework: str) -> Backend:
    """The backend for `framework`; its framework is imported only now, so the CLI starts fast.

    Raises `InferedgeError` for an unknown framework or one whose package is not installed.
    """
    try:
        if framework == "torch":
            from inferedge.dnn.torch.backend import TorchBackend

            return TorchBackend()
        if framework == "tensorflow":
            with quiet_native_import():
                from inferedge.dnn.tensorflow.backend import KerasBackend
            return KerasBackend()
    except ImportError as exc:
        raise _missing(framework, exc) from None
    raise _unknown(framework)


WEIGHTS_SUFFIXES = {"torch": ".pt", "tensorflow": ".weights.h5"}
"""Each framework's backbone-weights suffix (its workflow's `weights_suffix`)."""


def weights_framework(path: Path) -> str | None:
    """The framework whose weights suffix `path` has, or None for another name."""
    # Longest first: a name ending in `.weights.h5` must not be taken for another suffix.
    for framework, suffix in sorted(WEIGHTS_SUFFIXES.items(), key=lambda kv: -len(kv[1])):
        if path.name.endswith(suffix):
            return framework
    return None


def get_workflow(framework: str) -> Workflow:
    """The workflow of `framework`, importing the framework only now."""
    workflow: Workflow
    try:
        if framework == "torch":
            from inferedge.dnn.torch.workflow import TorchWorkflow

            workflow = TorchWorkflow()
            return workflow
        if framework == "tensorflow":
            with quiet_native_import():
                from inferedge.dnn.tensorflow.workflow import KerasWorkflow
            workflow = KerasWorkflow()
            return workflow
    except ImportError as exc:
        raise _missing(framework, exc) from None
    raise _unknown(framework)
