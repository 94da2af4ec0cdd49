"""The profiling step: measure the pipeline's model segment by segment on this machine."""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath

from inferedge.api.jobs import MIB, ProfileJob
from inferedge.core.profile import MeasuredProfile, dump_profile
from inferedge.core.resources import input_estimate
from inferedge.dnn.frameworks import get_backend
from inferedge.dnn.protocols import ProfileRequest
from inferedge.steps.data import resolve_dataset
from inferedge.steps.memory import require
from inferedge.steps.reporting import Reporter
from inferedge.storage import fetch_object, open_store


def model_ref(name: str, uri: str | None) -> str:
    """A zoo name as is; a stored model is downloaded to a path that is the same in every step
    and on every host, because the path is the model's identity in profiles and plans."""
    if uri is None:
        return name
    local = Path(tempfile.gettempdir()) / "inferedge-models" / PurePosixPath(uri).name
    return str(fetch_object(uri, local))


def run_profile(job: ProfileJob, reporter: Reporter) -> MeasuredProfile:
    """Profile `job.model` as the job says, write the profile to `job.key`, and return it."""
    emulated = job.memory_mib * MIB if job.memory_mib else None
    require(
        input_estimate(job.input_shape, max(job.batch_sizes)),
        f"profiling at input shape {list(job.input_shape)} and batch {max(job.batch_sizes)}",
        emulated,
    )
    num_classes = job.num_classes
    if num_classes is None:
        assert job.dataset is not None  # ProfileJob requires one of the two
        num_classes = resolve_dataset(job.dataset, job.input_shape).num_classes
    request = ProfileRequest(
        model_ref=model_ref(job.model, job.model_uri),
        num_classes=num_classes,
        input_shape=job.input_shape,
        batch_sizes=job.batch_sizes,
        warmup=job.warmup,
        repeats=job.repeats,
        device_name=job.device_name,
        emulate_slowdown=job.emulate_slowdown or 1.0,
        memory_bytes=emulated,
        head=job.head,
    )
    with reporter.progress(f"profiling {job.model} on {job.device_name}") as progress:
        profile = get_backend(job.framework).profile(request, progress)
    open_store(job.store).put_bytes(job.key, dump_profile(profile).encode())
    reporter.info(f"profiled {job.model} ({profile.num_cuts} cuts) on {job.device_name}: {job.key}")
    return profile
