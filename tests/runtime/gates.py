"""A decode that waits at a gate: shows that decoding runs off the event loop, by order alone.

Kept apart from the test modules (and from torch) because the decoding process imports it.
"""

from __future__ import annotations

import os

from inferedge.runtime.oip_codec import Decoded, InputSpec, Limits, decode_infer


class GatedDecode:
    """`decode_infer` that first tells `entered` (a FIFO) which process decodes, then waits for
    a byte on `gate` (another FIFO). Picklable, for the decoding process."""

    def __init__(self, entered: str, gate: str) -> None:
        self.entered = entered
        self.gate = gate

    def __call__(self, body: bytes, header: str | None, spec: InputSpec, limits: Limits) -> Decoded:
        """Signal, wait, decode."""
        with open(self.entered, "wb") as signal:  # blocks until the test listens
            signal.write(str(os.getpid()).encode())
        with open(self.gate, "rb") as wait:  # blocks until the test lets the decode go on
            wait.read(1)
        return decode_infer(body, header, spec, limits)


def tell(path: str, data: bytes = b"1") -> None:
    """Open FIFO `path` for writing (blocks until its reader is there) and write `data`."""
    with open(path, "wb") as fifo:
        fifo.write(data)


def hear(path: str) -> bytes:
    """Open FIFO `path` for reading (blocks until its writer is there) and read it all."""
    with open(path, "rb") as fifo:
        return fifo.read()
