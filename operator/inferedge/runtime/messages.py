"""The values the dataplanes exchange: an answer per sample, and the offload's request and reply.

Entrypoints (HTTP, NATS) turn these into bytes and back; the dataplanes only build and read them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from inferedge.core.operating_space import OperatingPoint
from inferedge.core.roles import Role
from inferedge.runtime.partition import RowResult

ProbeKind = Literal["rtt", "bandwidth"]
PROBE_KINDS: tuple[ProbeKind, ...] = ("rtt", "bandwidth")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(_Frozen):
    """The answer for one sample, as every entrypoint returns it."""

    prediction: int = Field(description="Predicted class index.")
    confidence: float = Field(description="Confidence of the exit that answered, in [0, 1].")
    exit_index: int = Field(
        description="Which classifier answered, in path order: edge exits, cloud exits, then "
        "the final classifier (index = number of exits)."
    )
    cut_index: int = Field(description="Cut point of the classifier that answered.")
    location: Role = Field(description="Where the answering classifier ran.")
    degraded: bool = Field(
        default=False, description="The cloud did not answer; the best edge exit did."
    )
    plan_hash: str = Field(description="Plan of the partitions that computed the answer.")
    timings: dict[str, float] = Field(
        description="Milliseconds: edge_ms (the edge walk), edge_compute_ms (its model calls "
        "alone, emulated slowdown included), total_ms; transfer_ms and cloud_ms when the cloud "
        "answered; offload_ms (time lost on the failed offload) when degraded."
    )
    reason: str | None = Field(default=None, description="Why the answer is degraded.")


class OffloadContext(_Frozen):
    """What travels with an offloaded activation besides its bytes."""

    plan_hash: str = Field(description="Plan the edge split the request with.")
    threshold: float = Field(description="The edge's c_thr when the request started.")
    timeout_s: float = Field(description="How long the edge waits for the cloud's answer.")
    point: OperatingPoint | None = Field(
        default=None, description="The operating point split at, when serving a space."
    )
    probe: ProbeKind | None = Field(
        default=None,
        description="A link probe, not an offload: the cloud answers at once, computing nothing "
        "(rtt: a few bytes, for the round trip; bandwidth: a sized payload).",
    )


class CloudAnswer(_Frozen):
    """The cloud's reply to one offload: an answer per offloaded row, in order."""

    plan_hash: str
    rows: tuple[RowResult, ...]
    queue_ms: float = Field(ge=0.0, description="Time waiting in the batcher.")
    compute_ms: float = Field(ge=0.0, description="Time running the batch.")
    batch_size: int = Field(ge=1, description="Samples in the batch this offload rode in.")
    max_batch_size: int | None = Field(
        default=None,
        ge=1,
        description=(
            "The cloud's batch limit: a larger offload runs in pieces, one after another, and is "
            "answered after the last, so an edge that groups offloads keeps each message within "
            "it. None: a cloud that does not say."
        ),
    )

    @property
    def cloud_ms(self) -> float:
        """Time the request spent inside the cloud dataplane."""
        return self.queue_ms + self.compute_ms


Offload = Callable[[np.ndarray, OffloadContext], Awaitable[CloudAnswer]]
"""Send the split activations of the pending rows to the cloud and await its answer."""
