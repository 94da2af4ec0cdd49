"""The refusal when a step's memory estimate exceeds what its host offers (`dnn.host`)."""

from __future__ import annotations

from inferedge.core.errors import InferedgeError
from inferedge.core.resources import shortfall
from inferedge.dnn.host import available_memory


def require(need: int, what: str, emulated_bytes: int | None = None) -> None:
    """Raise a one-line `InferedgeError` when `need` bytes exceed what this host offers."""
    refusal = shortfall(need, available_memory(emulated_bytes), what)
    if refusal is not None:
        raise InferedgeError(refusal)
