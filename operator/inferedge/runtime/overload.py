"""Why the cloud answered an offload without computing it: it was full, or it was too late.

Both travel back to the edge as one-line error replies that start with the class name; the
edge maps `CloudBusy` onto the degraded reason `cloud_busy` and `DeadlineExpired` onto
`timeout` (the edge has usually given up by then anyway).
"""

from __future__ import annotations

from inferedge.core.errors import InferedgeError


class CloudBusy(InferedgeError):
    """The cloud refused an offload at once because it is full (its admission bound, its
    in-flight bound, or its chunk reassembly budget)."""


class DeadlineExpired(InferedgeError):
    """An offload's deadline passed before its rows were computed; they were dropped."""
