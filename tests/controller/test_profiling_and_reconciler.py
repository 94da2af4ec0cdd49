"""DeviceProfile decisions (pure), reading API bodies, and the reconcile loop's coalescing and
backoff."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from inferedge.controller import naming
from inferedge.controller.cache import Indices, ObjectCache
from inferedge.controller.observe import job_snapshot, rollout_facts
from inferedge.controller.profiling import JobSnapshot, Need, Recorded, plan_profiling
from inferedge.controller.reconciler import Outcome, Reconciler
from inferedge.controller.views import DeploymentView, JobView

NOW = datetime(2026, 1, 2, tzinfo=UTC)
NEED = Need(key="k1", label="resnet18@k1", job_name="jetson-profile-k1", pipeline="digits")
DONE = "2026-01-01T12:00:00Z"


def test_a_needed_model_without_a_job_or_result_is_profiled() -> None:
    plan = plan_profiling([NEED], {}, {}, NOW, None)
    assert plan.create == (NEED,)
    assert (plan.status, plan.reason) == ("False", "Profiling")


def test_a_finished_job_is_recorded_once() -> None:
    jobs = {NEED.job_name: JobSnapshot("Succeeded", completed_at=DONE)}
    plan = plan_profiling([NEED], jobs, {}, NOW, None)
    assert plan.record == ((NEED, DONE),)
    recorded = {NEED.label: Recorded(NEED.label, "s3://b/k", DONE)}
    again = plan_profiling([NEED], jobs, recorded, NOW, None)
    assert (again.create, again.record, again.delete) == ((), (), ())
    assert again.keep == tuple(recorded.values())
    assert (again.status, again.reason) == ("True", "Profiled")


def test_a_stale_profile_is_measured_again_on_schedule() -> None:
    jobs = {NEED.job_name: JobSnapshot("Succeeded", completed_at=DONE)}
    recorded = {NEED.label: Recorded(NEED.label, "s3://b/k", DONE)}
    assert plan_profiling([NEED], jobs, recorded, NOW, 24).delete == ()  # 12 h old
    later = NOW + timedelta(hours=13)
    assert plan_profiling([NEED], jobs, recorded, later, 24).delete == (NEED.job_name,)
    # The deleted Job is made again; the old result serves until the new one is recorded.
    gone = plan_profiling([NEED], {}, recorded, later, 24)
    assert gone.create == (NEED,)
    assert gone.keep == tuple(recorded.values())


def test_failures_and_unused_profiles_are_reported() -> None:
    jobs = {NEED.job_name: JobSnapshot("Failed", message="OOMKilled")}
    failed = plan_profiling([NEED], jobs, {}, NOW, None)
    assert (failed.status, failed.reason) == ("False", "ProfilingFailed")
    assert "OOMKilled" in failed.message
    assert failed.create == ()  # not retried: delete the Job or change the spec
    unused = plan_profiling([], {}, {"old@k0": Recorded("old@k0", "u", DONE)}, NOW, None)
    assert (unused.status, unused.reason, unused.keep) == ("Unknown", "NotNeeded", ())


def test_job_and_deployment_observations() -> None:
    assert job_snapshot(None).state == "Absent"
    assert job_snapshot(JobView.from_body({"status": {"active": 1}})).state == "Active"
    done = {
        "status": {"completionTime": DONE, "conditions": [{"type": "Complete", "status": "True"}]}
    }
    assert job_snapshot(JobView.from_body(done)) == JobSnapshot("Succeeded", completed_at=DONE)
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "message": "boom"}]}}
    assert job_snapshot(JobView.from_body(failed)) == JobSnapshot("Failed", message="boom")
    deployment = DeploymentView.from_body(
        {
            "metadata": {"generation": 3, "annotations": {"inferedge.io/template-hash": "h1"}},
            "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "updatedReplicas": 2, "readyReplicas": 2},
        }
    )
    facts = rollout_facts("p-edge", deployment, "h1")
    assert facts.pods_ready
    assert not facts.rolled_out  # the controller has not seen generation 3 yet
    assert rollout_facts("p-edge", deployment, "h2").current is False
    assert rollout_facts("p-edge", deployment, None).current is None


@pytest.mark.asyncio
async def test_nudges_coalesce_and_failures_back_off() -> None:
    calls: list[str] = []
    gate = asyncio.Event()
    results = iter([Outcome.DONE, Outcome.RETRY, Outcome.DONE])

    async def reconcile(key: str) -> Outcome:
        calls.append(key)
        await gate.wait()
        return next(results)

    reconciler: Reconciler[str] = Reconciler(
        "test", reconcile, logging.getLogger("test"), base_delay=0.01
    )
    reconciler.nudge("a")
    await asyncio.sleep(0)  # let the first run start and block on the gate
    for _ in range(5):
        reconciler.nudge("a")  # while it runs: one more run, not five
    gate.set()
    for _ in range(200):
        if len(calls) == 3:
            break
        await asyncio.sleep(0.01)
    # run 1 (nudged again meanwhile) -> run 2 asks for a retry -> run 3 after the backoff
    assert calls == ["a", "a", "a"]
    await reconciler.close()


@pytest.mark.asyncio
async def test_an_exception_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    attempts = 0

    async def reconcile(key: str) -> Outcome:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("API down")
        return Outcome.DONE

    reconciler: Reconciler[str] = Reconciler(
        "test", reconcile, logging.getLogger("test"), base_delay=0.01
    )
    reconciler.nudge("a")
    for _ in range(200):
        if attempts == 2:
            break
        await asyncio.sleep(0.01)
    assert attempts == 2
    assert "reconcile failed; retrying with backoff" in caplog.text
    await reconciler.close()


@pytest.mark.asyncio
async def test_again_runs_at_once_and_gone_forgets_the_backoff() -> None:
    outcomes = iter([Outcome.RETRY, Outcome.AGAIN, Outcome.GONE])
    calls = 0

    async def reconcile(key: str) -> Outcome:
        nonlocal calls
        calls += 1
        return next(outcomes)

    reconciler: Reconciler[str] = Reconciler(
        "test", reconcile, logging.getLogger("test"), base_delay=0.01
    )
    reconciler.nudge("a")
    for _ in range(200):
        if calls == 3 and "a" not in reconciler._states:
            break
        await asyncio.sleep(0.01)
    # retry after the backoff -> again right away -> gone: nothing is kept for the key
    assert calls == 3
    assert "a" not in reconciler._states
    await reconciler.close()


def _pipeline(version: str, phase: str, finalizers: int = 0) -> dict[str, object]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": "p",
            "resourceVersion": version,
            "finalizers": ["inferedge.io/finalizer"] * finalizers,
        },
        "status": {"phase": phase},
    }


def _served(cache: ObjectCache) -> tuple[object, int]:
    view = cache.pipeline(("ns", "p"))
    assert view is not None
    return view.status.get("phase"), len(view.raw["metadata"]["finalizers"])


def test_the_written_status_stands_until_the_index_holds_it_whatever_the_versions() -> None:
    # Opaque versions that order the wrong way as numbers or do not parse as numbers at all:
    # no decision may depend on them.
    store: dict[tuple[str, str], list[dict[str, object]]] = {
        ("ns", "p"): [_pipeline("9", "Pending")]
    }
    cache = ObjectCache(Indices(pipelines=store, device_profiles={}, jobs={}, deployments={}))
    cache.remember(naming.PIPELINES, _pipeline("10", "Profiling", finalizers=1))
    assert _served(cache) == ("Profiling", 1)  # the watch has not delivered the write yet
    # A change that raced the write (the finalizer, added just before it) is delivered first:
    # it is older than the written copy, which keeps standing (else Events were posted twice).
    store[("ns", "p")] = [_pipeline("x1", "Pending", finalizers=1)]
    assert _served(cache) == ("Profiling", 1)
    store[("ns", "p")] = [_pipeline("10", "Profiling", finalizers=1)]
    assert _served(cache) == ("Profiling", 1)  # delivered: the index serves from now on
    cache.remember(naming.PIPELINES, _pipeline("b3", "Training", finalizers=1))
    assert _served(cache) == ("Training", 1)
    # A later copy carrying the written status (another change after the write) replaces it.
    store[("ns", "p")] = [_pipeline("0", "Training", finalizers=2)]
    assert _served(cache) == ("Training", 2)
    store[("ns", "p")] = [_pipeline("a7", "Failed", finalizers=2)]
    assert _served(cache) == ("Failed", 2)  # the written copy is not used again
