"""Errors a dataplane raises to its entrypoints (HTTP, NATS), which map them to their protocol.

Those that travel back to the edge as error replies start the reply with their class name,
which the edge maps back onto the error (`wiring.nats_offload`).
"""

from __future__ import annotations

from inferedge.core.errors import InferedgeError


class NotReady(InferedgeError):
    """The server has no partition loaded yet, or is shutting down."""


class PlanMismatch(InferedgeError):
    """The cloud serves another plan than the one the edge split the request for.

    The cloud refuses such an offload rather than run an activation through segments it was not
    cut for; an offload transport raises this on the edge side when the cloud refused.
    """


class OffloadFailed(InferedgeError):
    """The cloud did not answer and the edge part has no exit to fall back on."""


class CloudBusy(InferedgeError):
    """The cloud refused an offload at once because it is full (its admission bound, its
    in-flight bound, or its chunk reassembly budget); the edge degrades with `cloud_busy`."""


class DeadlineExpired(InferedgeError):
    """An offload's deadline passed before its rows were computed; they were dropped, and the
    edge (which has usually given up by then) reads it as a `timeout`."""
