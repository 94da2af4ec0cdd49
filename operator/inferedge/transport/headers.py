"""Header names shared by the codec, the chunking protocol and the client; sizes on the wire.

Every header the project puts on a NATS message starts with `Inferedge-`. Other headers (NATS
status lines, tracing) pass through untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain

MiB = 1 << 20  # the unit of payload limits, as nats-server counts them

PREFIX = "Inferedge-"

# Set on an error reply; its value is the one-line error.
ERROR = "Inferedge-Error"

# On a site's answers (dispatcher <- edge replica): the HTTP status the answer stands for.
ANSWER_STATUS = "Inferedge-Status"

# The status header nats-server puts on its own replies (503 = no responders).
NATS_STATUS = "Status"
NO_RESPONDERS_STATUS = "503"

# The NATS header block is `NATS/1.0\r\n`, then `Key: Value\r\n` per header, then `\r\n`.
_BLOCK_FRAME = len(b"NATS/1.0\r\n") + len(b"\r\n")
_LINE_FRAME = len(b": \r\n")


def header_block_size(headers: Mapping[str, str]) -> int:
    """Bytes the headers take on the wire; nats-server counts them against max_payload."""
    if not headers:
        return 0
    # One joined string measures every key and value in C: this runs on every message.
    text = "".join(chain.from_iterable(headers.items()))
    size = len(text) if text.isascii() else len(text.encode())
    return _BLOCK_FRAME + size + _LINE_FRAME * len(headers)
