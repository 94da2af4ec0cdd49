"""Status conditions in the metav1.Condition shape, and the Events that announce changes.

One `Condition` model serves both custom resources: the lifecycle and the DeviceProfile
decisions build it, the API's status models embed it (so it is part of the CRD schema), and
the operator reads it back from an object's status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ConditionStatus = Literal["True", "False", "Unknown"]
CONDITION_STATUSES: Final[tuple[ConditionStatus, ...]] = get_args(ConditionStatus)
EventType = Literal["Normal", "Warning"]
# metav1.Condition's type: an optional DNS-subdomain prefix, then a CamelCase-ish name.
CONDITION_TYPE: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
RFC3339: Final = "date-time"


class Condition(BaseModel):
    """A status condition in the metav1.Condition shape, so `kubectl wait` and GitOps tools work."""

    # The same conventions as the API's spec models: camelCase on the wire, strict, immutable.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    type: str = Field(
        pattern=CONDITION_TYPE,
        max_length=316,
        description="Condition type: Profiled, Planned, ExitsTrained, ArtifactsStored, "
        "EdgeReady, CloudReady, Ready.",
    )
    status: ConditionStatus = Field(
        description="Whether the condition holds: True, False or Unknown."
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation the condition was computed from; older means stale.",
    )
    last_transition_time: str = Field(
        description="RFC 3339 time of the last status change.",
        json_schema_extra={"format": RFC3339},
    )
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        min_length=1,
        max_length=1024,
        description="CamelCase reason for the last transition, for machines.",
    )
    message: str = Field(
        default="", max_length=32768, description="Human-readable details of the transition."
    )

    def to_dict(self) -> dict[str, Any]:
        """camelCase, as the API server stores it (no observedGeneration when unknown)."""
        dumped: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return dumped

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Condition | None:
        """A condition read back from an object's status; None if it is not one of ours.

        Lenient on purpose: only the type and status must be sound, since all a condition read
        back contributes is whether its status changed and since when.
        """
        status = raw.get("status")
        kind = raw.get("type")
        if not isinstance(kind, str) or status not in CONDITION_STATUSES:
            return None
        generation = raw.get("observedGeneration")
        return cls.model_construct(
            type=kind,
            status=status,
            reason=str(raw.get("reason") or ""),
            message=str(raw.get("message") or ""),
            observed_generation=generation if isinstance(generation, int) else None,
            last_transition_time=str(raw.get("lastTransitionTime") or ""),
        )


def conditions_from_status(status: Mapping[str, Any] | None) -> tuple[Condition, ...]:
    """The well-formed conditions in an object's status; a missing or foreign list has none."""
    raw = (status or {}).get("conditions")
    if not isinstance(raw, list):
        return ()
    parsed = (Condition.from_dict(r) for r in raw if isinstance(r, Mapping))
    return tuple(c for c in parsed if c is not None)


def merge_condition(previous: Sequence[Condition], new: Condition, now: str) -> Condition:
    """`new`, keeping the previous lastTransitionTime when the status did not change."""
    for old in previous:
        if old.type == new.type:
            since = old.last_transition_time if old.status == new.status else now
            return new.model_copy(update={"last_transition_time": since or now})
    return new.model_copy(update={"last_transition_time": now})


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on an object."""

    type: EventType
    reason: str
    message: str
