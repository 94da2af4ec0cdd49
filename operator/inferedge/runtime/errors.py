"""Errors a dataplane raises to its entrypoints (HTTP, NATS), which map them to their protocol."""

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
