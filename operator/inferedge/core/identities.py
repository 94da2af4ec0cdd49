"""Who talks on the NATS bus: four identities, and the inbox each one receives replies on.

- `edge`: the edge servers; they publish offloads and take their own reload commands.
- `cloud`: the cloud servers; they serve offloads and take their own reload commands.
- `control`: the operator, `inferedge run` and `inferedge reload`; only they publish reloads.
- `dispatcher`: a site's ingress over several edge pools; it sends requests to the pools'
  replicas and takes their heartbeats.

A client's inboxes (request replies, chunk streams) live under its identity's prefix, so the
server can let each identity subscribe to its own inboxes and nobody else's. The prefix is a
plain string known to both the operator (which sets it on pods) and the transport (which turns
it into permissions), hence it lives here, free of any I/O library.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Identity = Literal["edge", "cloud", "control", "dispatcher"]
IDENTITIES: Final[tuple[Identity, ...]] = get_args(Identity)

INBOX_ROOT: Final = "_INBOX.inferedge"


def inbox_prefix(identity: Identity) -> str:
    """The subject prefix of `identity`'s inboxes, e.g. `_INBOX.inferedge.edge`."""
    if identity not in IDENTITIES:
        raise ValueError(f"identity {identity!r}: expected one of {', '.join(IDENTITIES)}")
    return f"{INBOX_ROOT}.{identity}"
