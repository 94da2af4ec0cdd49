"""Messaging: the activation wire format, chunking, and the NATS client and server.

The wire format, subjects, settings and the embedded server need only numpy. The client
(`inferedge.transport.client.Messenger`) and chunking need nats-py (the `runtime` extra), so
they are imported from their modules, never here, and the rest works without nats-py.
"""

from inferedge.transport.codec import Encoding, Payload, WireMeta, decode, encode
from inferedge.transport.errors import (
    AuthorizationError,
    BusyError,
    NoResponders,
    PermissionDenied,
    RemoteError,
    RequestTimeout,
    ServerStartError,
    TransportError,
    WireError,
)
from inferedge.transport.server import EmbeddedNats
from inferedge.transport.settings import NatsSettings
from inferedge.transport.subjects import QUEUE_GROUP, VERBS, subject

__all__ = [
    "QUEUE_GROUP",
    "VERBS",
    "AuthorizationError",
    "BusyError",
    "EmbeddedNats",
    "Encoding",
    "NatsSettings",
    "NoResponders",
    "Payload",
    "PermissionDenied",
    "RemoteError",
    "RequestTimeout",
    "ServerStartError",
    "TransportError",
    "WireError",
    "WireMeta",
    "decode",
    "encode",
    "subject",
]
