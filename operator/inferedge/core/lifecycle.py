"""The InferencePipeline state machine: facts in; phase, conditions, events and actions out.

The operator gathers facts about one pipeline (is its spec valid, are its two profiles in the
store, what plan do they give, how are its Jobs and Deployments doing) and calls `decide`. The
decision says which phase the pipeline is in, the eight conditions in the metav1.Condition shape,
the Events to post and which actions to take next. Nothing here does I/O, so every transition is
unit-tested without a cluster.

The steps form a chain; the first one that is not done names the phase:

    Profiling -> Planning -> Training -> Exporting -> Deploying -> Ready

Each step is keyed by what it depends on (profiles by model and device, the plan by its hash,
training by the plan and the training-relevant spec, the runtime by its config), so an edit
redoes only the steps whose key changed: a new threshold only rolls the runtime config, a new
model profiles and plans again.

A failure is either retried by the operator itself (a store that does not answer, an API error:
the pipeline stays in its phase and the condition says so) or waits for a change (a bad spec, an
infeasible plan, a failed Job: phase Failed, and the message says what would let it go on).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Literal, get_args

from inferedge.core.conditions import (
    Condition,
    ConditionStatus,
    Event,
    EventType,
    conditions_from_status,
    merge_condition,
)
from inferedge.core.facts import Failure, JobFacts, PipelineFacts, RolloutFacts, waits

Phase = Literal[
    "Pending", "Profiling", "Planning", "Training", "Exporting", "Deploying", "Ready", "Failed"
]
PHASES: Final[tuple[Phase, ...]] = get_args(Phase)
ConditionType = Literal[
    "Profiled",
    "Planned",
    "ExitsTrained",
    "ArtifactsStored",
    "EdgeReady",
    "CloudReady",
    "Ready",
    "Stalled",
]
CONDITION_TYPES: Final[tuple[ConditionType, ...]] = get_args(ConditionType)


class Action(StrEnum):
    """Something the operator must do next; the controller maps each to API or store calls."""

    REQUEST_PROFILES = "RequestProfiles"  # ask the DeviceProfiles to profile the model
    STORE_PLAN = "StorePlan"  # write the plan the operator computed into the store
    START_TRAINING = "StartTraining"  # create the training Job
    START_EXPORT = "StartExport"  # create the export Job
    APPLY_CONFIG = "ApplyConfig"  # create or replace the runtime ConfigMap
    APPLY_EDGE = "ApplyEdge"  # create or replace the edge Deployment
    APPLY_CLOUD = "ApplyCloud"  # create or replace the cloud Deployment and Service
    PRUNE_JOBS = "PruneJobs"  # delete Jobs of superseded training runs


@dataclass(frozen=True)
class Previous:
    """The status the pipeline has now (phase and conditions), read back from the object."""

    phase: Phase = "Pending"
    conditions: tuple[Condition, ...] = ()

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> Previous:
        """Lenient: a missing or foreign status reads as Pending with no conditions."""
        if not status:
            return cls()
        phase = status.get("phase")
        return cls(
            phase=phase if phase in PHASES else "Pending",
            conditions=conditions_from_status(status),
        )


@dataclass(frozen=True)
class Decision:
    """What the operator does about one pipeline now."""

    phase: Phase
    conditions: tuple[Condition, ...]
    events: tuple[Event, ...]
    actions: tuple[Action, ...]
    message: str
    retry: bool = False  # a retried failure: reconcile again after a backoff

    def condition(self, kind: str) -> Condition:
        """The condition of type `kind` (all eight are always present)."""
        return next(c for c in self.conditions if c.type == kind)


@dataclass
class _Walk:
    """Mutable scratch state while `decide` walks the steps."""

    phase: Phase = "Ready"
    message: str = ""
    failure: Failure | None = None
    failed_condition: str = ""
    actions: list[Action] = field(default_factory=list)
    states: dict[str, tuple[ConditionStatus, str, str]] = field(default_factory=dict)

    def done(self, kind: str, reason: str, message: str) -> None:
        self.states[kind] = ("True", reason, message)

    def wait(self, kind: str, reason: str, message: str) -> None:
        self.states[kind] = ("False", reason, message)

    def stop(self, phase: Phase, kind: str, reason: str, message: str) -> bool:
        """The step `kind` is in progress: it names the phase; later steps wait."""
        self.phase, self.message = phase, message
        self.wait(kind, reason, message)
        return False

    def fail(self, phase: Phase, kind: str, failure: Failure) -> bool:
        """The step `kind` failed: Failed, or its own phase when the operator retries."""
        self.failure, self.failed_condition = failure, kind
        return self.stop(
            "Failed" if not failure.retried else phase, kind, failure.reason, failure.describe()
        )


def decide(previous: Previous, facts: PipelineFacts, now: str) -> Decision:
    """The next phase, conditions, events and actions for a pipeline with these facts.

    `now` is the RFC 3339 time used for conditions whose status changes.
    """
    walk = _Walk()
    if facts.blocker is not None:
        walk.fail("Pending", "Profiled", facts.blocker)
    else:
        _ = (
            _profiled(walk, facts)
            and _planned(walk, facts)
            and _trained(walk, facts)
            and _exported(walk, facts)
            and _deployed(walk, facts)
        )
    _pods(walk, "EdgeReady", facts.edge)
    _pods(walk, "CloudReady", facts.cloud)
    if walk.phase == "Ready":
        walk.message = "edge and cloud serve the current plan"
        walk.done("Ready", "Ready", walk.message)
        walk.actions.append(Action.PRUNE_JOBS)
    else:
        reason = walk.failure.reason if walk.failure is not None else walk.phase
        walk.wait("Ready", reason, walk.message)
    if walk.phase == "Failed" and walk.failure is not None:
        # kstatus (Flux) reports Failed only through a True Stalled condition: set it for
        # failures the operator will not retry, which need a spec change.
        walk.states["Stalled"] = ("True", walk.failure.reason, walk.message)
    conditions = tuple(
        merge_condition(
            previous.conditions,
            _condition(kind, _state(walk, kind), facts.generation, now),
            now,
        )
        for kind in CONDITION_TYPES
    )
    return Decision(
        phase=walk.phase,
        conditions=conditions,
        events=_events(previous, walk),
        actions=tuple(walk.actions),
        message=walk.message,
        retry=walk.failure is not None and walk.failure.retried,
    )


_WAITING: Final[dict[str, tuple[str, str]]] = {
    "Profiled": ("Waiting", "waiting for a valid spec"),
    "Planned": ("WaitingForProfiles", "waiting for both profiles"),
    "ExitsTrained": ("WaitingForPlan", "waiting for the plan"),
    "ArtifactsStored": ("WaitingForTraining", "waiting for trained exits"),
    "EdgeReady": ("WaitingForArtifacts", "nothing deployed yet"),
    "CloudReady": ("WaitingForArtifacts", "nothing deployed yet"),
    "Stalled": ("Progressing", "no failure that needs a spec change"),
}


def _condition(
    kind: str, state: tuple[ConditionStatus, str, str], generation: int, now: str
) -> Condition:
    status, reason, message = state
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=now,
    )


def _state(walk: _Walk, kind: str) -> tuple[ConditionStatus, str, str]:
    if kind in walk.states:
        return walk.states[kind]
    reason, message = _WAITING[kind]
    return ("False", reason, message)


def _profiled(walk: _Walk, facts: PipelineFacts) -> bool:
    profiles = facts.profiles
    if isinstance(profiles, Failure):
        return walk.fail("Profiling", "Profiled", profiles)
    if not profiles:
        return walk.stop("Profiling", "Profiled", "ProfilingPending", "waiting for profiles")
    failed = [p for p in profiles if p.state == "Failed"]
    if failed:
        first = failed[0]
        return walk.fail(
            "Profiling",
            "Profiled",
            waits(
                "ProfilingFailed",
                f"{first.role} DeviceProfile {first.device_profile!r}: {first.message}",
                "fix the DeviceProfile, or delete its failed profiling Job to run it again",
            ),
        )
    pending = [p for p in profiles if p.state != "Ready"]
    if pending:
        walk.actions.append(Action.REQUEST_PROFILES)
        running = any(p.state == "Running" for p in pending)
        names = ", ".join(f"{p.role} ({p.device_profile})" for p in pending)
        reason = "ProfilingRunning" if running else "ProfilingPending"
        verb = "profiling" if running else "waiting to profile"
        return walk.stop("Profiling", "Profiled", reason, f"{verb} on {names}")
    names = " and ".join(f"{p.role} ({p.device_profile})" for p in profiles)
    walk.done("Profiled", "Profiled", f"profiled on {names}")
    return True


def _planned(walk: _Walk, facts: PipelineFacts) -> bool:
    plan = facts.plan
    if plan is None:
        return walk.stop("Planning", "Planned", "Planning", "planning")
    if isinstance(plan, Failure):
        return walk.fail("Planning", "Planned", plan)
    if not plan.stored:
        walk.actions.append(Action.STORE_PLAN)
        return walk.stop("Planning", "Planned", "StoringPlan", f"storing plan {plan.hash}")
    walk.done("Planned", "Planned", f"plan {plan.hash}: {plan.summary}")
    return True


def _job_step(
    walk: _Walk,
    job: JobFacts | None,
    *,
    phase: Phase,
    kind: str,
    start: Action,
    verb: str,
    failed_reason: str,
) -> bool:
    if job is None or job.state == "Absent":
        walk.actions.append(start)
        name = f" {job.name}" if job is not None else ""
        return walk.stop(phase, kind, f"{phase}Started", f"starting Job{name} ({verb})")
    if job.state == "Active":
        return walk.stop(phase, kind, phase, f"Job {job.name} is {verb}")
    if job.state == "Failed":
        detail = f": {job.message}" if job.message else ""
        return walk.fail(
            phase,
            kind,
            waits(
                failed_reason,
                f"Job {job.name} failed{detail}",
                f"fix the spec, or delete Job {job.name} to run it again",
            ),
        )
    return True


def _trained(walk: _Walk, facts: PipelineFacts) -> bool:
    if not _job_step(
        walk,
        facts.training,
        phase="Training",
        kind="ExitsTrained",
        start=Action.START_TRAINING,
        verb="training the exits",
        failed_reason="TrainingFailed",
    ):
        return False
    name = facts.training.name if facts.training else ""
    walk.done("ExitsTrained", "ExitsTrained", f"exits trained and calibrated by Job {name}")
    return True


def _exported(walk: _Walk, facts: PipelineFacts) -> bool:
    if not _job_step(
        walk,
        facts.export,
        phase="Exporting",
        kind="ArtifactsStored",
        start=Action.START_EXPORT,
        verb="exporting the partitions",
        failed_reason="ExportFailed",
    ):
        return False
    artifacts = facts.artifacts
    if isinstance(artifacts, Failure):
        return walk.fail("Exporting", "ArtifactsStored", artifacts)
    if artifacts is None or not artifacts.committed:
        name = facts.export.name if facts.export else "the export Job"
        where = f" under {artifacts.prefix}" if artifacts is not None else ""
        return walk.fail(
            "Exporting",
            "ArtifactsStored",
            waits(
                "ArtifactsMissing",
                f"{name} succeeded but no committed artifact set is in the store{where}",
                f"delete Job {name} to export again",
            ),
        )
    walk.done("ArtifactsStored", "ArtifactsStored", f"committed under {artifacts.prefix}")
    return True


def _deployed(walk: _Walk, facts: PipelineFacts) -> bool:
    if not facts.config_current:
        walk.actions.append(Action.APPLY_CONFIG)
    parts = (("edge", facts.edge, Action.APPLY_EDGE), ("cloud", facts.cloud, Action.APPLY_CLOUD))
    waiting = []
    for role, rollout, apply in parts:
        if rollout is None or not rollout.current:
            walk.actions.append(apply)
            waiting.append(f"{role}: rolling out")
        elif not rollout.rolled_out:
            waiting.append(f"{role}: {rollout.ready}/{rollout.desired} pods ready")
    if waiting or not facts.config_current:
        message = "; ".join(waiting) or "updating the runtime config"
        walk.phase, walk.message = "Deploying", message
        return False
    return True


def _pods(walk: _Walk, kind: str, rollout: RolloutFacts | None) -> None:
    """EdgeReady / CloudReady: live pod readiness of whatever Deployment exists."""
    if rollout is None or not rollout.exists:
        return  # the default: WaitingForArtifacts
    pods = f"{rollout.ready}/{rollout.desired} pods ready"
    stale = "" if rollout.current else " (an update is pending)"
    if rollout.pods_ready:
        walk.done(kind, "PodsReady", f"{pods}{stale}")
    else:
        walk.wait(kind, "PodsNotReady", f"{pods}{stale}")


def _events(previous: Previous, walk: _Walk) -> tuple[Event, ...]:
    failure = walk.failure
    if walk.phase != previous.phase:
        kind: EventType = "Warning" if walk.phase == "Failed" else "Normal"
        reason = failure.reason if walk.phase == "Failed" and failure else walk.phase
        text = f"{previous.phase} -> {walk.phase}: {walk.message}"
        return (Event(kind, reason, text),)
    if failure is not None:
        before = next((c for c in previous.conditions if c.type == walk.failed_condition), None)
        if before is None or before.reason != failure.reason:
            return (Event("Warning", failure.reason, walk.message),)
    return ()
