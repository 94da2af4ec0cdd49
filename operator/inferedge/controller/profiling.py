"""Pure decisions for a DeviceProfile: which profiling Jobs to start, re-run, or record.

A DeviceProfile profiles each model that some InferencePipeline needs on it, once per profiling
key (model, store and device setup; see `keys.profiling_key`). A finished Job's profile is
recorded in the DeviceProfile's status; a recorded profile older than the profile's
`reprofileAfterHours` is measured again by deleting the finished Job so a new one of the same
name starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from inferedge.core.conditions import ConditionStatus
from inferedge.core.facts import JobState


@dataclass(frozen=True)
class Need:
    """One model some pipeline needs profiled here."""

    key: str
    label: str  # how the status names it: <model>@<key>
    job_name: str
    pipeline: str  # the first pipeline (by name) that needs it; its Secret is used


@dataclass(frozen=True)
class JobSnapshot:
    """A profiling Job as observed."""

    state: JobState
    completed_at: str | None = None
    message: str = ""


@dataclass(frozen=True)
class Recorded:
    """A profile recorded in status.results."""

    label: str
    uri: str
    profiled_at: str


@dataclass(frozen=True)
class ProfilingPlan:
    """What to do for one DeviceProfile now, and how its Profiled condition reads."""

    create: tuple[Need, ...]
    delete: tuple[str, ...]  # Job names
    record: tuple[tuple[Need, str], ...]  # (need, completion time)
    keep: tuple[Recorded, ...]  # results that stay as they are
    status: ConditionStatus
    reason: str
    message: str


def parse_time(value: str) -> datetime | None:
    """An RFC 3339 time, or None if it is not one."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def is_stale(recorded: Recorded, now: datetime, reprofile_after_hours: int | None) -> bool:
    """Whether a recorded profile is due to be measured again."""
    if reprofile_after_hours is None:
        return False
    at = parse_time(recorded.profiled_at)
    return at is None or now - at >= timedelta(hours=reprofile_after_hours)


def plan_profiling(
    needs: Sequence[Need],
    jobs: Mapping[str, JobSnapshot],
    results: Mapping[str, Recorded],
    now: datetime,
    reprofile_after_hours: int | None,
) -> ProfilingPlan:
    """Start missing Jobs, record finished ones, re-run stale ones; keep only needed results."""
    create: list[Need] = []
    delete: list[str] = []
    record: list[tuple[Need, str]] = []
    keep: list[Recorded] = []
    running: list[str] = []
    failed: list[str] = []
    for need in needs:
        job, result = jobs.get(need.job_name), results.get(need.label)
        stale = result is not None and is_stale(result, now, reprofile_after_hours)
        if result is not None:
            keep.append(result)
        if job is None or job.state == "Absent":
            if result is None or stale:
                create.append(need)
                running.append(need.label)
        elif job.state == "Active":
            running.append(need.label)
        elif job.state == "Failed":
            failed.append(
                f"Job {need.job_name} for {need.label} failed: {job.message or 'no reason'}"
            )
        elif job.completed_at and (result is None or result.profiled_at != job.completed_at):
            record.append((need, job.completed_at))
            keep = [r for r in keep if r.label != need.label]
        elif stale:
            delete.append(need.job_name)
            running.append(need.label)
    status: ConditionStatus
    if failed:
        status, reason, message = "False", "ProfilingFailed", "; ".join(failed)
    elif not needs:
        status, reason, message = "Unknown", "NotNeeded", "no InferencePipeline uses this profile"
    elif running:
        status, reason, message = "False", "Profiling", f"profiling {', '.join(running)}"
    else:
        status, reason, message = "True", "Profiled", f"{len(needs)} model(s) profiled"
    return ProfilingPlan(
        create=tuple(create),
        delete=tuple(delete),
        record=tuple(record),
        keep=tuple(keep),
        status=status,
        reason=reason,
        message=message,
    )
