"""The InferencePipeline state machine: every transition, and the invariants over all facts."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferedge.core.conditions import Condition, ConditionStatus, merge_condition
from inferedge.core.facts import (
    ArtifactFacts,
    Failure,
    JobFacts,
    PipelineFacts,
    PlanFacts,
    ProfileFacts,
    RolloutFacts,
    retried,
    waits,
)
from inferedge.core.lifecycle import CONDITION_TYPES, Action, Decision, Phase, Previous, decide

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"
READY_PROFILES = (ProfileFacts("edge", "jetson", "Ready"), ProfileFacts("cloud", "cpu", "Ready"))
PLAN = PlanFacts(hash="0123456789abcdef", summary="split after cut 3", stored=True)
TRAIN_OK = JobFacts("p-train-01234567", "Succeeded")
EXPORT_OK = JobFacts("p-export-01234567", "Succeeded")
STORED = ArtifactFacts(prefix="ns/p/0123456789abcdef", committed=True)


def rollout(
    name: str,
    *,
    current: bool | None = True,
    ready: int = 1,
    desired: int = 1,
    exists: bool = True,
    observed: bool = True,
) -> RolloutFacts:
    return RolloutFacts(
        name=name,
        exists=exists,
        current=current,
        observed=observed,
        desired=desired,
        updated=ready,
        ready=ready,
    )


def serving(**changes: object) -> PipelineFacts:
    """Facts of a pipeline whose every step is done and whose pods are ready."""
    facts = PipelineFacts(
        generation=2,
        profiles=READY_PROFILES,
        plan=PLAN,
        training=TRAIN_OK,
        export=EXPORT_OK,
        artifacts=STORED,
        config_current=True,
        edge=rollout("p-edge"),
        cloud=rollout("p-cloud", ready=2, desired=2),
    )
    return replace(facts, **changes)  # type: ignore[arg-type]


def statuses(decision: Decision) -> dict[str, str]:
    """The status of every positive-polarity condition (all but Stalled)."""
    return {c.type: c.status for c in decision.conditions if c.type != "Stalled"}


def settle(facts: PipelineFacts) -> Decision:
    """Decide from scratch, then again with that status: the fixpoint a reconcile reaches."""
    first = decide(Previous(), facts, T0)
    return decide(Previous(first.phase, first.conditions), facts, T1)


# -- each step -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "phase", "actions", "reason"),
    [
        (
            PipelineFacts(
                1,
                profiles=(
                    ProfileFacts("edge", "j", "Missing"),
                    ProfileFacts("cloud", "c", "Ready"),
                ),
            ),
            "Profiling",
            (Action.REQUEST_PROFILES,),
            "ProfilingPending",
        ),
        (
            PipelineFacts(
                1,
                profiles=(
                    ProfileFacts("edge", "j", "Running"),
                    ProfileFacts("cloud", "c", "Missing"),
                ),
            ),
            "Profiling",
            (Action.REQUEST_PROFILES,),
            "ProfilingRunning",
        ),
        (PipelineFacts(1, profiles=READY_PROFILES), "Planning", (), "Planning"),
        (
            PipelineFacts(1, profiles=READY_PROFILES, plan=replace(PLAN, stored=False)),
            "Planning",
            (Action.STORE_PLAN,),
            "StoringPlan",
        ),
        (
            PipelineFacts(
                1,
                profiles=READY_PROFILES,
                plan=PLAN,
                training=JobFacts("t", "Absent"),
                export=JobFacts("x", "Absent"),
            ),
            "Training",
            (Action.START_TRAINING,),
            "TrainingStarted",
        ),
        (
            PipelineFacts(
                1,
                profiles=READY_PROFILES,
                plan=PLAN,
                training=JobFacts("t", "Active"),
                export=JobFacts("x", "Absent"),
            ),
            "Training",
            (),
            "Training",
        ),
        (
            PipelineFacts(
                1,
                profiles=READY_PROFILES,
                plan=PLAN,
                training=TRAIN_OK,
                export=JobFacts("x", "Absent"),
            ),
            "Exporting",
            (Action.START_EXPORT,),
            "ExportingStarted",
        ),
        (
            PipelineFacts(
                1,
                profiles=READY_PROFILES,
                plan=PLAN,
                training=TRAIN_OK,
                export=JobFacts("x", "Active"),
            ),
            "Exporting",
            (),
            "Exporting",
        ),
        (
            serving(
                config_current=False,
                edge=rollout("e", exists=False, current=False),
                cloud=rollout("c", exists=False, current=False),
            ),
            "Deploying",
            (Action.APPLY_CONFIG, Action.APPLY_EDGE, Action.APPLY_CLOUD),
            "WaitingForArtifacts",
        ),
        (serving(edge=rollout("e", ready=0)), "Deploying", (), "PodsNotReady"),
        (serving(cloud=rollout("c", observed=False)), "Deploying", (), "Deploying"),
    ],
)
def test_each_step_names_the_phase_and_the_next_action(
    facts: PipelineFacts, phase: str, actions: tuple[Action, ...], reason: str
) -> None:
    decision = decide(Previous(), facts, T0)
    assert decision.phase == phase
    assert decision.actions == actions
    assert decision.condition("Ready").reason == phase
    step = next(c for c in decision.conditions if c.status == "False")
    assert step.reason == reason
    assert not decision.retry


def test_a_serving_pipeline_is_ready_and_prunes_old_jobs() -> None:
    decision = decide(Previous("Deploying"), serving(), T0)
    assert decision.phase == "Ready"
    assert decision.actions == (Action.PRUNE_JOBS,)
    assert set(statuses(decision).values()) == {"True"}
    assert decision.condition("CloudReady").message == "2/2 pods ready"


def test_a_new_pipeline_announces_its_first_phase() -> None:
    decision = decide(Previous(), PipelineFacts(1, profiles=READY_PROFILES), T0)
    (event,) = decision.events
    assert (event.type, event.reason) == ("Normal", "Planning")
    assert event.message.startswith("Pending -> Planning: ")


@pytest.mark.parametrize(
    ("facts", "reason", "hint"),
    [
        (
            PipelineFacts(3, blocker=waits("InvalidSpec", "spec: exits.edge: too big", "fix it")),
            "InvalidSpec",
            "fix it",
        ),
        (
            PipelineFacts(
                1,
                profiles=(
                    ProfileFacts("edge", "j", "Failed", "OOMKilled"),
                    ProfileFacts("cloud", "c", "Ready"),
                ),
            ),
            "ProfilingFailed",
            "delete its failed profiling Job",
        ),
        (
            PipelineFacts(
                1,
                profiles=READY_PROFILES,
                plan=waits("PlanInfeasible", "no split fits", "change spec.partitioning"),
            ),
            "PlanInfeasible",
            "change spec.partitioning",
        ),
        (
            PipelineFacts(
                1,
                profiles=READY_PROFILES,
                plan=PLAN,
                training=JobFacts("p-train-1", "Failed", "BackoffLimitExceeded"),
                export=JobFacts("p-export-1", "Absent"),
            ),
            "TrainingFailed",
            "delete Job p-train-1",
        ),
        (
            PipelineFacts(
                1,
                profiles=READY_PROFILES,
                plan=PLAN,
                training=TRAIN_OK,
                export=JobFacts("p-export-1", "Failed"),
            ),
            "ExportFailed",
            "delete Job p-export-1",
        ),
        (
            serving(artifacts=ArtifactFacts("ns/p/h", committed=False)),
            "ArtifactsMissing",
            "to export again",
        ),
    ],
)
def test_failures_that_wait_for_a_change_fail_the_pipeline(
    facts: PipelineFacts, reason: str, hint: str
) -> None:
    decision = decide(Previous("Training"), facts, T0)
    assert decision.phase == "Failed"
    assert not decision.retry
    ready = decision.condition("Ready")
    assert (ready.status, ready.reason) == ("False", reason)
    assert "not retried" in ready.message
    assert hint in ready.message
    (event,) = decision.events
    assert (event.type, event.reason) == ("Warning", reason)
    assert not {Action.START_TRAINING, Action.START_EXPORT, Action.APPLY_CONFIG} & set(
        decision.actions
    )


@pytest.mark.parametrize(
    ("facts", "phase"),
    [
        (PipelineFacts(1, profiles=retried("StoreUnavailable", "s3: timed out")), "Profiling"),
        (
            PipelineFacts(1, profiles=READY_PROFILES, plan=retried("StoreUnavailable", "x")),
            "Planning",
        ),
        (serving(artifacts=retried("StoreUnavailable", "x")), "Exporting"),
        (PipelineFacts(1, blocker=retried("SecretNotFound", "no Secret")), "Pending"),
    ],
)
def test_retried_failures_keep_the_phase_and_ask_for_a_retry(
    facts: PipelineFacts, phase: Phase
) -> None:
    decision = decide(Previous(phase), facts, T0)
    assert decision.phase == phase
    assert decision.retry
    assert "(retried with backoff)" in decision.condition("Ready").message
    (event,) = decision.events  # the failure is new: one Warning
    assert event.type == "Warning"
    again = decide(Previous(decision.phase, decision.conditions), facts, T1)
    assert again.events == ()  # and only once


# -- what an edit redoes --------------------------------------------------------------------------


def test_a_threshold_edit_only_reapplies_the_config_and_the_pods() -> None:
    before = settle(serving())
    assert before.phase == "Ready"
    # A new threshold changes the config, hence both pod templates; nothing upstream moves.
    edited = serving(
        config_current=False,
        edge=rollout("p-edge", current=False),
        cloud=rollout("p-cloud", current=False, ready=2, desired=2),
    )
    decision = decide(Previous(before.phase, before.conditions), edited, T1)
    assert decision.actions == (Action.APPLY_CONFIG, Action.APPLY_EDGE, Action.APPLY_CLOUD)
    assert decision.phase == "Deploying"
    kept = {"Profiled", "Planned", "ExitsTrained", "ArtifactsStored", "EdgeReady", "CloudReady"}
    for condition in decision.conditions:
        if condition.type in kept:
            assert condition.status == "True"
            assert condition.last_transition_time == T0  # untouched
    assert "an update is pending" in decision.condition("EdgeReady").message


def test_a_model_edit_plans_and_trains_again_while_the_old_pods_serve() -> None:
    before = settle(serving())
    new_plan = replace(PLAN, hash="fedcba9876543210", stored=False)
    edited = serving(
        plan=new_plan,
        training=None,
        export=None,
        artifacts=None,
        config_current=None,
        edge=rollout("p-edge", current=None),
        cloud=rollout("p-cloud", current=None),
    )
    decision = decide(Previous(before.phase, before.conditions), edited, T1)
    assert decision.phase == "Planning"
    assert decision.actions == (Action.STORE_PLAN,)
    assert statuses(decision)["EdgeReady"] == "True"  # live pods still answer
    assert statuses(decision)["Ready"] == "False"


# -- conditions -----------------------------------------------------------------------------------


def ready(
    status: ConditionStatus, reason: str, message: str, generation: int, at: str
) -> Condition:
    return Condition(
        type="Ready",
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=at,
    )


def test_merge_condition_keeps_the_transition_time_while_the_status_holds() -> None:
    old = ready("False", "Training", "a", 1, T0)
    same = merge_condition([old], ready("False", "Exporting", "b", 2, ""), T1)
    assert same.last_transition_time == T0
    assert (same.reason, same.observed_generation) == ("Exporting", 2)
    flipped = merge_condition([old], ready("True", "Ready", "c", 2, ""), T1)
    assert flipped.last_transition_time == T1


def test_previous_status_is_read_leniently() -> None:
    assert Previous.from_status(None) == Previous()
    junk = {
        "phase": "Dancing",
        "conditions": [{"type": 1}, "x", {"type": "Ready", "status": "Maybe"}],
    }
    assert Previous.from_status(junk) == Previous()
    good = {
        "phase": "Training",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Training", "lastTransitionTime": T0}
        ],
    }
    previous = Previous.from_status(good)
    assert previous.phase == "Training"
    assert previous.conditions[0].to_dict() == {
        "type": "Ready",
        "status": "False",
        "reason": "Training",
        "message": "",
        "lastTransitionTime": T0,
    }


# -- invariants over every combination of facts ---------------------------------------------------

failures = st.builds(
    Failure,
    reason=st.sampled_from(["StoreUnavailable", "InvalidSpec", "PlanInfeasible"]),
    message=st.text(min_size=1, max_size=20),
    retried=st.booleans(),
    hint=st.text(max_size=10),
)
job_states = st.sampled_from(["Absent", "Active", "Succeeded", "Failed"])
jobs = st.builds(JobFacts, name=st.just("p-job-1"), state=job_states, message=st.text(max_size=8))
profile_tuples = st.tuples(
    st.builds(
        ProfileFacts,
        role=st.just("edge"),
        device_profile=st.just("e"),
        state=st.sampled_from(["Missing", "Running", "Ready", "Failed"]),
    ),
    st.builds(
        ProfileFacts,
        role=st.just("cloud"),
        device_profile=st.just("c"),
        state=st.sampled_from(["Missing", "Running", "Ready", "Failed"]),
    ),
)
rollouts = st.builds(
    RolloutFacts,
    name=st.just("p-part"),
    exists=st.booleans(),
    current=st.none() | st.booleans(),
    observed=st.booleans(),
    desired=st.integers(0, 3),
    updated=st.integers(0, 3),
    ready=st.integers(0, 3),
)
all_facts = st.builds(
    PipelineFacts,
    generation=st.integers(1, 9),
    blocker=st.none() | failures,
    profiles=st.none() | failures | profile_tuples,
    plan=st.none()
    | failures
    | st.builds(
        PlanFacts, hash=st.just("0123456789abcdef"), summary=st.just("s"), stored=st.booleans()
    ),
    training=st.none() | jobs,
    export=st.none() | jobs,
    artifacts=st.none()
    | failures
    | st.builds(ArtifactFacts, prefix=st.just("a/b/c"), committed=st.booleans()),
    config_current=st.none() | st.booleans(),
    edge=st.none() | rollouts,
    cloud=st.none() | rollouts,
)
previous_status = st.builds(
    Previous,
    phase=st.sampled_from(["Pending", "Profiling", "Training", "Ready", "Failed"]),
    conditions=st.just(()),
)


@given(previous_status, all_facts)
def test_every_decision_is_well_formed(previous: Previous, facts: PipelineFacts) -> None:
    decision = decide(previous, facts, T0)
    assert tuple(c.type for c in decision.conditions) == CONDITION_TYPES
    for condition in decision.conditions:
        assert condition.status in ("True", "False")
        assert condition.reason
        assert condition.reason[0].isalpha()
        assert condition.observed_generation == facts.generation
        assert condition.last_transition_time == T0
    ready = decision.condition("Ready").status == "True"
    assert ready == (decision.phase == "Ready")
    # kstatus: Stalled is True exactly when the pipeline failed and will not be retried.
    assert (decision.condition("Stalled").status == "True") == (decision.phase == "Failed")
    if ready:  # Ready means every step is done and both parts serve
        assert set(statuses(decision).values()) == {"True"}
    assert decision.retry == (
        decision.phase != "Failed" and "retried with backoff" in decision.condition("Ready").message
    )
    if decision.phase == "Failed":
        assert decision.events or previous.phase == "Failed"
        assert not {Action.START_TRAINING, Action.START_EXPORT, Action.APPLY_EDGE} & set(
            decision.actions
        )
    if decision.phase != previous.phase:
        (event,) = decision.events
        assert event.type == ("Warning" if decision.phase == "Failed" else "Normal")
        assert event.message.startswith(f"{previous.phase} -> {decision.phase}: ")
    if facts.blocker is not None:
        assert decision.actions == ()


@given(all_facts)
def test_deciding_again_on_the_same_facts_is_quiet(facts: PipelineFacts) -> None:
    first = decide(Previous(), facts, T0)
    second = decide(Previous(first.phase, first.conditions), facts, T1)
    assert second.events == ()
    assert second.phase == first.phase
    assert second.conditions == first.conditions  # times kept: nothing changed
    assert second.actions == first.actions


@given(all_facts)
def test_work_starts_only_once_every_earlier_step_is_done(facts: PipelineFacts) -> None:
    decision = decide(Previous(), facts, T0)
    done = statuses(decision)
    if Action.START_TRAINING in decision.actions:
        assert done["Profiled"] == done["Planned"] == "True"
    if Action.START_EXPORT in decision.actions:
        assert done["ExitsTrained"] == "True"
    if {Action.APPLY_CONFIG, Action.APPLY_EDGE, Action.APPLY_CLOUD} & set(decision.actions):
        assert done["ArtifactsStored"] == "True"
