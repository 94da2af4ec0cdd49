"""What the operator observed about one pipeline: the input of `lifecycle.decide`.

The facts are gathered step by step (profiles, plan, training, export, artifacts, rollouts); a
step that could not be observed carries a `Failure`, which says whether the operator retries it
by itself or waits for a change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from inferedge.core.roles import Role

JobState = Literal["Absent", "Active", "Succeeded", "Failed"]
ProfileState = Literal["Missing", "Running", "Ready", "Failed"]


@dataclass(frozen=True)
class Failure:
    """Why a step cannot go on. `retried`: the operator tries again by itself after a delay;
    otherwise it waits for a change, and `hint` says which (shown in the message)."""

    reason: str
    message: str
    retried: bool
    hint: str = ""

    def describe(self) -> str:
        """The message users see: what went wrong, then whether and when it is retried."""
        if self.retried:
            return f"{self.message} (retried with backoff)"
        hint = f": {self.hint}" if self.hint else ""
        return f"{self.message} (not retried{hint})"


def retried(reason: str, message: str) -> Failure:
    """A transient failure the operator retries by itself (store or API unreachable)."""
    return Failure(reason, message, retried=True)


def waits(reason: str, message: str, hint: str) -> Failure:
    """A failure that needs a change (spec, DeviceProfile, Secret, a failed Job deleted)."""
    return Failure(reason, message, retried=False, hint=hint)


@dataclass(frozen=True)
class ProfileFacts:
    """One device class's profile of the pipeline's model."""

    role: Role
    device_profile: str
    state: ProfileState
    message: str = ""


@dataclass(frozen=True)
class PlanFacts:
    """The plan the operator computed from the two profiles."""

    hash: str
    summary: str
    stored: bool


@dataclass(frozen=True)
class JobFacts:
    """A Job the pipeline needs (training or export), by its deterministic name."""

    name: str
    state: JobState
    message: str = ""


@dataclass(frozen=True)
class ArtifactFacts:
    """The committed artifact set the export Job published."""

    prefix: str
    committed: bool


@dataclass(frozen=True)
class RolloutFacts:
    """A Deployment as observed: `current` is None while the desired one is not known yet."""

    name: str
    exists: bool
    current: bool | None = None
    observed: bool = True  # the Deployment controller has seen its latest generation
    desired: int = 0
    updated: int = 0
    ready: int = 0

    @property
    def pods_ready(self) -> bool:
        """Live readiness: as many ready pods as the Deployment asks for."""
        return self.exists and self.ready >= self.desired

    @property
    def rolled_out(self) -> bool:
        """The current template is fully rolled out and every pod of it is ready."""
        return (
            self.exists
            and bool(self.current)
            and self.observed
            and self.updated >= self.desired
            and self.ready >= self.desired
        )


@dataclass(frozen=True)
class PipelineFacts:
    """Everything the operator observed about one pipeline, gathered step by step.

    A step's facts are None when an earlier step is not done (they were not gathered), or a
    Failure when gathering them failed. `blocker` stops everything (invalid spec, missing refs).
    """

    generation: int
    blocker: Failure | None = None
    profiles: tuple[ProfileFacts, ...] | Failure | None = None
    plan: PlanFacts | Failure | None = None
    training: JobFacts | None = None
    export: JobFacts | None = None
    artifacts: ArtifactFacts | Failure | None = None
    config_current: bool | None = None
    edge: RolloutFacts | None = None
    cloud: RolloutFacts | None = None
