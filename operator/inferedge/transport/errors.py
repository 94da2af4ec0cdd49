"""Transport errors: each renders as one line, so a worker can put it in an error reply."""

from __future__ import annotations

from inferedge.core.errors import InferedgeError


class TransportError(InferedgeError):
    """Talking to NATS failed: not connected, refused, or a protocol step went wrong."""


class WireError(TransportError):
    """A message is malformed: a header is missing, unknown or inconsistent with the payload."""


class RemoteError(TransportError):
    """The serving side answered with an error; the message is its one-line description."""


class NoResponders(TransportError):
    """Nobody subscribes to the subject a request was sent to."""


class RequestTimeout(TransportError):
    """A request, or one step of a chunked transfer, got no answer in time."""


class BusyError(TransportError):
    """A receiver refused a chunked message because its reassembly budget is spent."""


class ServerStartError(TransportError):
    """An embedded nats-server could not be found, started or stopped."""


class AuthorizationError(TransportError):
    """nats-server refused to let this client sign in (no, wrong or expired credentials)."""


class PermissionDenied(TransportError):
    """nats-server refused a publish or subscription this client's identity is not allowed."""
