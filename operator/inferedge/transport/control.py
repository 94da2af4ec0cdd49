"""Reload commands on `inferedge.<ns>.<pipeline>.reload`, and the servers' acknowledgements.

Every edge and cloud server of a pipeline subscribes to its reload subject (not in a queue
group: each replica must act), one subject per role. `reload_pipeline` reloads the cloud
replicas first, waits for their acknowledgements, then the edges; the cloud keeps the plan it
served before, so offloads the edges send meanwhile are still answered.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inferedge.core.errors import describe_validation_error
from inferedge.core.roles import Role
from inferedge.transport.errors import RemoteError, TransportError, WireError
from inferedge.transport.subjects import reload_subject

if TYPE_CHECKING:
    from inferedge.transport.client import Messenger


class ReloadCommand(BaseModel):
    """Serve another artifact set and/or another c_thr."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role = Field(description="Which servers act on this command.")
    prefix: str | None = Field(
        default=None,
        min_length=1,
        description="Artifact set to serve: <namespace>/<pipeline>/<plan-hash>/<set-id>.",
    )
    threshold: float | None = Field(
        default=None, ge=0.0, description="New c_thr (above 1 disables early exits)."
    )

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _something(self) -> ReloadCommand:
        if self.prefix is None and self.threshold is None:
            raise ValueError("a reload needs a prefix, a threshold, or both")
        return self


class ReloadAck(BaseModel):
    """One server's answer to a reload: what it serves now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    plan_hash: str
    threshold: float


def parse_reload(data: bytes) -> ReloadCommand:
    """A reload command from its JSON body; WireError naming the bad field otherwise."""
    try:
        return ReloadCommand.model_validate_json(data)
    except ValidationError as exc:
        raise WireError(describe_validation_error(exc, "reload command")) from None


def parse_ack(data: bytes) -> ReloadAck:
    """A reload acknowledgement from its JSON body; WireError naming the bad field otherwise."""
    try:
        return ReloadAck.model_validate_json(data)
    except ValidationError as exc:
        raise WireError(describe_validation_error(exc, "reload acknowledgement")) from None


class ReloadError(TransportError):
    """Fewer servers than expected acknowledged a reload, or one refused it."""


async def reload_pipeline(
    messenger: Messenger,
    namespace: str,
    pipeline: str,
    *,
    prefix: str | None = None,
    threshold: float | None = None,
    replicas: dict[Role, int],
    timeout_s: float = 60.0,
) -> list[ReloadAck]:
    """Reload every server of a pipeline, the cloud replicas before the edges.

    `replicas` says how many servers of each role must acknowledge; a role with 0 is skipped.
    Raises ReloadError when a server refuses or too few answer within `timeout_s` (per role);
    the edges are then left untouched if the cloud failed.
    """
    acks: list[ReloadAck] = []
    role: Role
    for role in ("cloud", "edge"):
        expect = replicas.get(role, 0)
        if expect <= 0:
            continue
        command = ReloadCommand(role=role, prefix=prefix, threshold=threshold)
        where = reload_subject(namespace, pipeline, role)
        replies = await messenger.broadcast(
            where, command.model_dump_json().encode(), expect=expect, timeout=timeout_s
        )
        refused = [r for r in replies if isinstance(r, RemoteError)]
        if refused:
            raise ReloadError(f"a {role} server refused the reload: {refused[0]}")
        acks += [parse_ack(bytes(r)) for r in replies if not isinstance(r, RemoteError)]
        if len(replies) < expect:
            raise ReloadError(
                f"{len(replies)} of {expect} {role} servers acknowledged the reload on {where} "
                f"within {timeout_s:g} s"
            )
    return acks
