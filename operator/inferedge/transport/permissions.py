"""What each identity may publish and subscribe to on the bus: pure, typed permission sets.

The sets follow the message flows of `client`, `chunking` and `control` (P stands for
`inferedge.<namespace>.<pipeline>`, I(x) for identity x's inbox prefix, `_INBOX.inferedge.x`):

- an offload request, or a chunked one's announcement: the edge publishes to `P.offload`;
  the cloud subscribes to it in the queue group;
- a reply, a go-ahead, a chunk ack or an error reply: the receiver publishes to the reply
  subject it was sent; the sender subscribes to `I(sender).>`;
- the chunks of a chunked request: the edge publishes into the cloud's stream inbox,
  `I(cloud).>`; those of a chunked reply: the cloud into the edge's, `I(edge).>`;
- a reload command: control publishes to `P.reload.edge` and `P.reload.cloud`; each edge or
  cloud server subscribes to its own; its ack goes to the reply subject, in `I(control).>`;
- a site's request: the dispatcher publishes to `P.infer.<pool>.<replica>`; each edge replica
  of a pool subscribes to its own (the edge identity may subscribe to `P.infer.*.*`); a large
  request or answer is chunked into the peer's inbox, as offloads are;
- a heartbeat: every edge replica of a pool sends one to `P.beat`, which the dispatcher serves
  and acknowledges to the reply subject, in `I(edge).>`.

Answers go to reply subjects a client was just sent, which nats-server's `allow_responses`
covers without a standing permission: each message received with a reply subject allows up
to RESPONSE_MAX messages to it within RESPONSE_EXPIRES. Two, because a chunked request's
announcement (or last acked chunk) is answered first by a go-ahead (or ack) and then by the
reply. Chunk streams do not run to reply subjects (the stream inbox is named in a header), so
each side may publish into the other's inboxes; inbox names carry a random 22-character token,
so that permission reaches only streams a peer was told about.

Nothing else is allowed: no `>` beyond an identity's own inbox prefix and its peer's, no
subscription to offloads outside the queue group, no reloads from edge or cloud.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from inferedge.core.identities import IDENTITIES, Identity, inbox_prefix
from inferedge.transport.errors import TransportError
from inferedge.transport.subjects import ANY, QUEUE_GROUP, subject_pattern

RESPONSE_MAX: Final = 2
# A reload acknowledgement may come after a new artifact set was fetched and verified.
RESPONSE_EXPIRES: Final = "10m"


@dataclass(frozen=True)
class Permissions:
    """Subjects one identity may publish and subscribe to (queue subscriptions are written
    `subject queue`), and whether it may answer the reply subjects it is sent."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    responses: bool

    def as_config(self) -> dict[str, Any]:
        """The `permissions` block of a nats-server user (JSON-compatible)."""
        block: dict[str, Any] = {
            "publish": {"allow": list(self.publish)},
            "subscribe": {"allow": list(self.subscribe)},
        }
        if self.responses:
            block["allow_responses"] = {"max": RESPONSE_MAX, "expires": RESPONSE_EXPIRES}
        return block


def inbox_pattern(identity: Identity) -> str:
    """Every inbox of `identity`: its prefix followed by one or more tokens."""
    return f"{inbox_prefix(identity)}.>"


def permissions(identity: Identity, namespace: str = ANY, pipeline: str = ANY) -> Permissions:
    """The permission set of `identity` for one pipeline, or, with ANY (`*`), for every
    pipeline of a namespace or of every namespace. SubjectError names a bad token."""
    offload = subject_pattern(namespace, pipeline, "offload")
    reload = subject_pattern(namespace, pipeline, "reload")
    replicas = f"{subject_pattern(namespace, pipeline, 'infer')}.*.*"
    beat = subject_pattern(namespace, pipeline, "beat")
    if identity == "edge":
        return Permissions(
            publish=(offload, beat, inbox_pattern("cloud"), inbox_pattern("dispatcher")),
            subscribe=(inbox_pattern("edge"), f"{reload}.edge", replicas),
            responses=True,
        )
    if identity == "dispatcher":
        return Permissions(
            publish=(replicas, inbox_pattern("edge")),
            subscribe=(inbox_pattern("dispatcher"), beat),
            responses=True,
        )
    if identity == "cloud":
        return Permissions(
            publish=(inbox_pattern("edge"),),
            subscribe=(f"{offload} {QUEUE_GROUP}", inbox_pattern("cloud"), f"{reload}.cloud"),
            responses=True,
        )
    if identity == "control":
        return Permissions(
            publish=(f"{reload}.cloud", f"{reload}.edge"),
            subscribe=(inbox_pattern("control"),),
            responses=False,
        )
    raise TransportError(f"identity {identity!r}: expected one of {', '.join(IDENTITIES)}")


@dataclass(frozen=True)
class User:
    """One nats-server user: its name and password as they go into the config (literal
    strings, or `$VARIABLE` references that nats-server resolves from its environment)."""

    name: str
    password: str
    permissions: Permissions


def authorization(users: Iterable[User]) -> dict[str, Any]:
    """The `authorization` block of a nats-server config declaring `users`."""
    return {
        "users": [
            {"user": u.name, "password": u.password, "permissions": u.permissions.as_config()}
            for u in users
        ]
    }
