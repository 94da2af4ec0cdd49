"""Work-arounds for the Keras and TensorFlow versions inferedge runs on, kept in one place."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_variable_export() -> Iterator[None]:
    """Silence the DeprecationWarning Keras 3.15 raises under numpy 2 for every variable it
    writes to a file (its tensors' `__array__` lacks numpy 2's `copy` argument, so numpy falls
    back to copying; the bytes written are the same)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        yield
