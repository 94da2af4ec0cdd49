"""The network link between edge and cloud."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Link(BaseModel):
    """A link with a bandwidth and a round-trip time, as declared or measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bandwidth_mbps: float = Field(
        default=20.0, gt=0.0, description="Usable uplink bandwidth in megabits per second."
    )
    rtt_ms: float = Field(default=20.0, ge=0.0, description="Round-trip time in milliseconds.")

    def transfer_ms(self, nbytes: int) -> float:
        """Time to send `nbytes` and get the (tiny) answer back: one RTT plus serialisation.

        Sending nothing costs nothing, so an edge-only plan pays no RTT.
        """
        if nbytes <= 0:
            return 0.0
        return self.rtt_ms + nbytes * 8.0 / (self.bandwidth_mbps * 1e6) * 1e3
