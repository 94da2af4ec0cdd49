"""The steps' typed arguments: rendered to argv and env, parsed back unchanged; bad values
named by their flag. And the identities the steps name their output with."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.jobs import SPEC_ENV, ExportJob, JobArgs, JobArgsError, ProfileJob, TrainJob
from inferedge.api.keys import (
    ArtifactIdentity,
    artifact_set_id,
    parse_identity,
    profiling_key,
    training_key,
)
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.cli.cluster_commands import cluster
from inferedge.core.errors import InferedgeError

SPEC = InferencePipelineSpec.model_validate(
    {
        "model": {"name": "resnet18", "inputShape": [3, 16, 16]},
        "edge": {"profile": "jetson"},
        "cloud": {"profile": "cpu"},
        "inference": {"threshold": 0.4},
    }
)
EDGE = DeviceProfileSpec.model_validate(
    {"role": "edge", "profiling": {"batchSizes": [1, 8]}, "emulation": {"slowdown": 8}}
)
SHA = "ab" * 32


def _values(job: JobArgs) -> dict[str, str]:
    """What the CLI hands `parse`: each flag's text, and each env variable's text."""
    argv = job.argv()[len(job.command) :]
    values = {argv[i][2:].replace("-", "_"): argv[i + 1] for i in range(0, len(argv), 2)}
    for name in type(job).model_fields:
        var = type(job).env_name(name)
        if var is not None and var in job.env():
            values[name] = job.env()[var]
    return values


JOBS: list[JobArgs] = [
    ProfileJob.of(SPEC, "jetson", EDGE, "ns/_profiles/jetson/k.json", emulated=False),
    ProfileJob.of(SPEC, "jetson", EDGE, "ns/_profiles/jetson/k.json", emulated=True),
    TrainJob(
        spec=SPEC,
        store="s3://bucket",
        plan_key="p",
        edge_profile_key="e",
        cloud_profile_key="c",
        output_prefix="o",
        report_thresholds=(0.3, 0.55),
    ),
    ExportJob(store="/tmp/x", plan_key="p", training_prefix="t", namespace="ns", pipeline="p"),
]


@pytest.mark.parametrize("job", JOBS, ids=lambda j: " ".join(j.command))
def test_every_job_round_trips_through_its_rendered_form(job: JobArgs) -> None:
    assert type(job).parse(_values(job)) == job


@pytest.mark.parametrize("job", JOBS, ids=lambda j: " ".join(j.command))
def test_the_cli_parses_what_the_job_renders(job: JobArgs, monkeypatch: pytest.MonkeyPatch) -> None:
    """click reads the argv and env exactly as a pod or `inferedge run` passes them."""
    seen: list[JobArgs] = []
    command = cluster.commands[job.command[1]]
    original = command.callback
    assert original is not None

    def capture(**values: object) -> None:
        seen.append(type(job).parse(values))

    monkeypatch.setattr(command, "callback", capture)
    result = CliRunner().invoke(cluster, job.argv()[1:], env=job.env(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == [job]


def test_emulation_travels_only_for_inferedge_run() -> None:
    cluster_job, local_job = JOBS[0], JOBS[1]
    assert isinstance(cluster_job, ProfileJob)
    assert isinstance(local_job, ProfileJob)
    assert "--emulate-slowdown" not in cluster_job.argv()
    assert local_job.emulate_slowdown == 8.0
    assert cluster_job.model_copy(update={"emulate_slowdown": 8.0}) == local_job


def test_the_spec_travels_in_the_environment() -> None:
    train = JOBS[2]
    assert SPEC_ENV in train.env()
    assert "--spec" not in train.argv()


@pytest.mark.parametrize(
    ("args_type", "values", "expected"),
    [
        (ProfileJob, {"model": "m", "input_shape": "3,x", "device_name": "d"}, "--input-shape"),
        (
            ProfileJob,
            {"model": "m", "input_shape": "3,8,8", "device_name": "d", "store": "s", "key": "k"},
            "give num_classes or dataset",
        ),
        (
            ProfileJob,
            {
                "model": "m",
                "input_shape": "3,8,8",
                "device_name": "d",
                "store": "s",
                "key": "k",
                "num_classes": "10",
                "repeats": "0",
            },
            "--repeats",
        ),
        (
            TrainJob,
            {
                "spec": "{not json",
                "store": "s",
                "plan_key": "p",
                "edge_profile_key": "e",
                "cloud_profile_key": "c",
                "output_prefix": "o",
            },
            SPEC_ENV,
        ),
        (
            TrainJob,
            {
                "spec": '{"model": {}}',
                "store": "s",
                "plan_key": "p",
                "edge_profile_key": "e",
                "cloud_profile_key": "c",
                "output_prefix": "o",
            },
            f"{SPEC_ENV}.model.name",
        ),
        (
            ExportJob,
            {
                "store": "s",
                "plan_key": "p",
                "training_prefix": "t",
                "namespace": "n",
                "pipeline": "p",
                "extra": "x",
            },
            "cluster export",
        ),
    ],
)
def test_bad_arguments_get_one_line_naming_the_flag(
    args_type: type[JobArgs], values: dict[str, str], expected: str
) -> None:
    with pytest.raises(JobArgsError) as caught:
        args_type.parse(values)
    text = str(caught.value)
    assert expected in text
    assert "\n" not in text


def test_a_bad_flag_exits_2_with_one_line() -> None:
    result = CliRunner().invoke(
        cluster,
        [
            "export",
            "--store",
            "s",
            "--plan-key",
            "p",
            "--training-prefix",
            "t",
            "--namespace",
            "n",
            "--pipeline",
            "x" * 64,
        ],
        standalone_mode=False,
        catch_exceptions=True,
    )
    assert isinstance(result.exception, click.UsageError)
    assert "--pipeline" in result.exception.format_message()


def test_store_keys_ignore_what_does_not_change_the_bytes() -> None:
    batching = SPEC.inference.cloud_batching.model_copy(update={"max_batch_size": 8})
    serving = {"threshold": 0.9, "offloads_in_flight": 4, "cloud_batching": batching}
    rolled = SPEC.model_copy(update={"inference": SPEC.inference.model_copy(update=serving)})
    assert training_key(rolled, "0" * 16) == training_key(SPEC, "0" * 16)
    assert profiling_key(rolled, EDGE) == profiling_key(SPEC, EDGE)
    other_head = InferencePipelineSpec.model_validate(
        {**SPEC.model_dump(by_alias=True), "exits": {"head": {"preset": "minimal"}}}
    )
    assert training_key(other_head, "0" * 16) != training_key(SPEC, "0" * 16)
    assert training_key(SPEC, "1" * 16) != training_key(SPEC, "0" * 16)
    # The profile times a head of the spec at every cut, and the threads the host caps it at.
    assert profiling_key(other_head, EDGE) != profiling_key(SPEC, EDGE)
    assert profiling_key(SPEC, EDGE, threads=1) != profiling_key(SPEC, EDGE)
    assert profiling_key(SPEC, EDGE, threads=1) != profiling_key(SPEC, EDGE, threads=2)


def test_a_set_is_named_by_its_training_inputs_and_its_weights() -> None:
    training = training_key(SPEC, "0" * 16)
    first = artifact_set_id(training, SHA)
    assert first == artifact_set_id(training, SHA)
    assert first != artifact_set_id(training, "cd" * 32)
    assert first != artifact_set_id(training_key(SPEC, "1" * 16), SHA)
    with pytest.raises(ValueError, match="weights digest"):
        artifact_set_id(training, "xyz")


def test_a_stored_identity_is_validated_and_must_be_consistent() -> None:
    identity = ArtifactIdentity.of("0" * 16, training_key(SPEC, "0" * 16), SHA)
    data = identity.model_dump_json().encode()
    assert parse_identity(data, "id.json") == identity
    forged = identity.model_copy(update={"set_id": "f" * 16}).model_dump_json().encode()
    with pytest.raises(InferedgeError, match="set_id does not match"):
        parse_identity(forged, "id.json")
    with pytest.raises(InferedgeError, match=r"id\.json: plan_hash"):
        parse_identity(
            b'{"plan_hash": "../x", "training": "", "weights_sha256": "", "set_id": ""}', "id.json"
        )
