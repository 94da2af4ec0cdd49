"""The framework-neutral face of a DNN backend: what the CLI and the runners call.

A backend loads a model reference (zoo name, `package.module:callable` or a saved-model path),
finds its cut points and measures its segments. Nothing here names a framework type, so a
TensorFlow backend can implement the same protocol next to the torch one.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from inferedge.core.errors import InferedgeError, one_line
from inferedge.core.profile import CutPoint, DeviceProfile

ProgressCallback = Callable[[int, int], None]
"""Called as `progress(done, total)` each time one (segment, batch size) pair is measured."""

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


@dataclass(frozen=True)
class ProfileRequest:
    """What to profile and how; the backend adds what it measures about the device."""

    model_ref: str
    num_classes: int
    input_shape: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    warmup: int
    repeats: int
    device_name: str
    emulate_slowdown: float = 1.0
    memory_bytes: int | None = None

    def __post_init__(self) -> None:
        checks = (
            ("num_classes", self.num_classes >= 1, ">= 1"),
            ("input_shape", _all_positive(self.input_shape), "positive sizes"),
            (
                "batch_sizes",
                _all_positive(self.batch_sizes)
                and len(set(self.batch_sizes)) == len(self.batch_sizes),
                "distinct positive sizes",
            ),
            ("warmup", self.warmup >= 0, ">= 0"),
            ("repeats", self.repeats >= 1, ">= 1"),
            ("emulate_slowdown", self.emulate_slowdown >= 1.0, ">= 1"),
            ("memory_bytes", self.memory_bytes is None or self.memory_bytes >= 1, ">= 1"),
        )
        for field, ok, expected in checks:
            if not ok:
                raise InferedgeError(
                    f"invalid profile request: {field} must be {expected}, "
                    f"got {getattr(self, field)!r}"
                )


class Backend(Protocol):
    """One DNN framework's implementation of cut-point discovery and profiling."""

    def cut_points(
        self, model_ref: str, num_classes: int, input_shape: tuple[int, ...]
    ) -> tuple[CutPoint, ...]:
        """The model's cut points, from the input (index 0) to the output (index K)."""
        ...

    def profile(
        self, request: ProfileRequest, progress: ProgressCallback | None = None
    ) -> DeviceProfile:
        """Measure every segment at every batch size and return a validated profile."""
        ...


def get_backend(framework: str) -> Backend:
    """The backend for `framework`; its framework is imported only now, so the CLI starts fast.

    Raises `InferedgeError` for an unknown framework or one whose package is not installed.
    """
    if framework == "torch":
        try:
            from inferedge.dnn.torch.backend import TorchBackend
        except ImportError as exc:
            raise InferedgeError(
                f"the torch backend needs PyTorch ({one_line(exc)}); "
                "install it with: pip install 'inferedge[torch]'"
            ) from None
        return TorchBackend()
    if framework == "tensorflow":
        try:
            with quiet_native_import():
                from inferedge.dnn.tensorflow.backend import KerasBackend
        except ImportError as exc:
            raise InferedgeError(
                f"the tensorflow backend needs TensorFlow ({one_line(exc)}); "
                "install it with: pip install 'inferedge[tensorflow]'"
            ) from None
        return KerasBackend()
    raise InferedgeError(
        f"unknown framework {framework!r}; expected one of {', '.join(FRAMEWORKS)}"
    )


def _all_positive(sizes: tuple[int, ...]) -> bool:
    return len(sizes) > 0 and all(size >= 1 for size in sizes)
