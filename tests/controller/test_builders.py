"""Manifest builders: pure dicts, safe pods, pinned placement, and only real CLI commands."""

from __future__ import annotations

from typing import Any

import click
import pytest
import yaml

from inferedge.api.adaptation import AdaptationSpec
from inferedge.api.base import SecretKeyRef
from inferedge.api.convert import link_for
from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.inference_spec import CloudBatchingSpec
from inferedge.api.jobs import ExportJob, ProfileJob, TrainJob
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.api.tuning import TuningSpec
from inferedge.cli import cli
from inferedge.controller import builders, jobs, naming, pods
from inferedge.core.roles import Role
from tests.controller.conftest import EXAMPLE

OWNER = {
    "apiVersion": "inferedge.io/v1alpha1",
    "kind": "InferencePipeline",
    "metadata": {"name": "digits", "namespace": "team-a", "uid": "uid-1"},
}
PIN = "ab" * 32
SET = "team-a/digits/0123456789abcdef/fedcba9876543210"
IMAGES = pods.Images(
    runtime="registry/runtime:1",
    edge="registry/jetson:1",
    runtime_tensorflow="registry/tf:1",
    edge_tensorflow="registry/tf-arm64:1",
)
INPUTS = jobs.TrainingInputs(
    training_key="0123456789abcdef",
    plan_key="team-a/digits/plans/p.json",
    edge_profile_key="team-a/_profiles/jetson/e.json",
    cloud_profile_key="team-a/_profiles/cpu/c.json",
    output_prefix="team-a/digits/training/0123456789abcdef",
)


def example(
    framework: str = "torch",
) -> tuple[DeviceProfileSpec, DeviceProfileSpec, InferencePipelineSpec]:
    edge, cloud, pipeline = (d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d)
    pipeline["spec"]["model"]["framework"] = framework
    if framework == "tensorflow":  # the example's resnet18 is a torch zoo model only
        pipeline["spec"]["model"]["name"] = "resnet50"
    return (
        DeviceProfileSpec.model_validate(edge["spec"]),
        DeviceProfileSpec.model_validate(cloud["spec"]),
        InferencePipelineSpec.model_validate(pipeline["spec"]),
    )


def all_manifests(framework: str = "torch") -> list[dict[str, Any]]:
    edge, cloud, spec = example(framework)
    data = builders.runtime_config(spec, SET, PIN)
    config = builders.build_config_map(owner=OWNER, data=data)
    config_hash = builders.template_hash(config) or ""
    dprof_owner = {
        **OWNER,
        "kind": "DeviceProfile",
        "metadata": {**OWNER["metadata"], "name": "jetson"},
    }
    return [
        jobs.build_profiling_job(
            owner=dprof_owner, device=edge, spec=spec, key="abcdef012345", images=IMAGES
        ),
        jobs.build_training_job(owner=OWNER, spec=spec, cloud=cloud, inputs=INPUTS, images=IMAGES),
        jobs.build_export_job(owner=OWNER, spec=spec, cloud=cloud, inputs=INPUTS, images=IMAGES),
        builders.build_deployment(
            owner=OWNER, role="edge", spec=spec, device=edge, config_hash=config_hash, images=IMAGES
        ),
        builders.build_deployment(
            owner=OWNER,
            role="cloud",
            spec=spec,
            device=cloud,
            config_hash=config_hash,
            images=IMAGES,
        ),
        builders.build_cloud_service(owner=OWNER),
        config,
    ]


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def with_pods(framework: str = "torch") -> list[dict[str, Any]]:
    return [m for m in all_manifests(framework) if m["kind"] in ("Job", "Deployment")]


def test_every_child_is_owned_labelled_and_deterministically_named() -> None:
    names = [m["metadata"]["name"] for m in all_manifests()]
    assert names == [
        "jetson-profile-abcdef01",
        "digits-train-01234567",
        "digits-export-01234567",
        "digits-edge",
        "digits-cloud",
        "digits-cloud",
        "digits-runtime",
    ]
    assert names == [m["metadata"]["name"] for m in all_manifests()]  # same inputs, same names
    for manifest in all_manifests():
        (owner,) = manifest["metadata"]["ownerReferences"]
        assert owner["uid"] == "uid-1"
        assert owner["controller"] is True
        labels = manifest["metadata"]["labels"]
        assert labels[naming.MANAGED_BY_LABEL] == naming.MANAGED_BY
        assert manifest["metadata"]["namespace"] == "team-a"


@pytest.mark.parametrize("index", range(5))
def test_pods_run_locked_down(index: int) -> None:
    manifest = with_pods()[index]
    pod = pod_spec(manifest)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        mounted = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounted  # the only writable paths are emptyDirs
        for env in container["env"]:  # no credential is ever a value
            if "KEY" in env["name"] or "PASSWORD" in env["name"] or "TOKEN" in env["name"]:
                assert "value" not in env
                assert "secretKeyRef" in env["valueFrom"]


def test_edge_pods_land_on_arm64_edge_nodes_with_the_nvidia_runtime() -> None:
    profiling, _, _, edge, cloud = with_pods()
    for manifest in (profiling, edge):
        pod = pod_spec(manifest)
        assert pod["nodeSelector"] == {
            "kubernetes.io/arch": "arm64",
            "inferedge.io/device": "jetson-orin-nano",
        }
        assert pod["tolerations"] == [
            {"key": "inferedge.io/edge", "operator": "Exists", "effect": "NoSchedule"}
        ]
        assert pod["runtimeClassName"] == "nvidia"
        assert pod["containers"][0]["image"] == "registry/jetson:1"
    assert pod_spec(cloud)["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert "runtimeClassName" not in pod_spec(cloud)
    assert pod_spec(cloud)["containers"][0]["resources"] == {
        "requests": {"cpu": "2", "memory": "2Gi"}
    }


def test_each_pod_gets_the_image_of_its_models_framework() -> None:
    def images(framework: str) -> list[str]:
        return [pod_spec(m)["containers"][0]["image"] for m in with_pods(framework)]

    # profiling (edge), training, export, edge Deployment, cloud Deployment
    assert images("torch") == [
        "registry/jetson:1", "registry/runtime:1", "registry/runtime:1",
        "registry/jetson:1", "registry/runtime:1",
    ]  # fmt: skip
    assert images("tensorflow") == [
        "registry/tf-arm64:1", "registry/tf:1", "registry/tf:1",
        "registry/tf-arm64:1", "registry/tf:1",
    ]  # fmt: skip
    profiling = pod_spec(with_pods("tensorflow")[0])["containers"][0]["args"]
    assert profiling[profiling.index("--framework") + 1] == "tensorflow"
    # A framework change is a new pod template: the Deployments roll onto the other image.
    for torch_pod, keras_pod in zip(with_pods("torch"), with_pods("tensorflow"), strict=True):
        if torch_pod["kind"] == "Deployment":
            assert builders.template_hash(torch_pod) != builders.template_hash(keras_pod)
    # The defaults: the TensorFlow runtime image, built for both architectures.
    defaults = pods.Images()
    assert defaults.for_role("edge", "tensorflow") == defaults.for_role("cloud", "tensorflow")
    assert "runtime-tensorflow" in defaults.runtime_tensorflow


def test_an_edge_profile_without_labels_still_defaults_to_arm64() -> None:
    device = DeviceProfileSpec(role="edge")
    assert pods.scheduling(device) == {"nodeSelector": {"kubernetes.io/arch": "arm64"}}
    assert pods.scheduling(DeviceProfileSpec(role="cloud")) == {}


def test_a_config_change_changes_the_pod_template() -> None:
    edge, _, spec = example()
    first = builders.runtime_config(spec, SET, PIN)
    tuned = spec.model_copy(
        update={"inference": spec.inference.model_copy(update={"threshold": 0.7})}
    )
    second = builders.runtime_config(tuned, SET, PIN)
    assert second["INFEREDGE_SERVE_THRESHOLD"] == "0.7"
    assert "INFEREDGE_SERVE_THRESHOLD" not in first  # the calibrated one from the manifest
    assert first["INFEREDGE_MANIFEST_SHA256"] == PIN  # the set is pinned, not looked up

    def deployment(data: dict[str, str]) -> dict[str, Any]:
        config = builders.build_config_map(owner=OWNER, data=data)
        return builders.build_deployment(
            owner=OWNER,
            role="edge",
            spec=spec,
            device=edge,
            config_hash=builders.template_hash(config) or "",
            images=IMAGES,
        )

    assert builders.template_hash(deployment(first)) != builders.template_hash(deployment(second))
    assert builders.template_hash(deployment(first)) == builders.template_hash(deployment(first))


def _command(args: list[str]) -> tuple[click.Command, list[str], str]:
    """The click command `inferedge ARGS` runs, what is left for it, and its env prefix."""
    command: click.Command = cli
    rest, prefix = list(args), "INFEREDGE"
    while isinstance(command, click.Group):
        name, rest = rest[0], rest[1:]
        sub = command.get_command(click.Context(command), name)
        assert sub is not None, f"`inferedge {' '.join(args[:2])}`: no command {name!r}"
        command, prefix = sub, f"{prefix}_{name.upper().replace('-', '_')}"
    return command, rest, prefix


def _reads(command: click.Command, prefix: str) -> set[str]:
    """Variables a command reads: its options' explicit envvars and <PREFIX>_<OPTION>."""
    names = {
        f"{prefix}_{str(p.name).upper()}" for p in command.params if isinstance(p, click.Option)
    }
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            names.update([param.envvar] if isinstance(param.envvar, str) else param.envvar)
    return names


def _settings_variables() -> set[str]:
    """What the S3 and NATS settings read from the environment (credentials, endpoint)."""
    from inferedge.storage import s3config
    from inferedge.transport import settings

    return {
        value
        for module in (s3config, settings)
        for key, value in vars(module).items()
        if key.startswith("ENV_")
    }


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
@pytest.mark.parametrize("index", range(5))
def test_every_container_runs_a_real_cli_command(
    index: int, framework: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = with_pods(framework)[index]
    config = all_manifests()[-1]
    (container,) = pod_spec(manifest)["containers"]
    assert container["command"] == ["inferedge"]
    command, rest, prefix = _command(container["args"])
    env = {e["name"]: e.get("value", "from-a-secret") for e in container["env"]}
    if container.get("envFrom"):
        env.update(config["data"])
    readable = _reads(command, prefix) | _settings_variables() | {"HOME", "MPLCONFIGDIR"}
    assert set(env) <= readable, f"read by nothing: {sorted(set(env) - readable)}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # click parses the arguments and environment exactly as in the pod (types, required
    # options, choices), without running the command.
    ctx = command.make_context("inferedge", list(rest), auto_envvar_prefix=prefix)
    # A step's command then turns the texts into its typed arguments, as the pod would.
    steps = {" ".join(t.command): t for t in (ProfileJob, TrainJob, ExportJob)}
    step = steps.get(" ".join(container["args"][:2]))
    if step is not None:
        parsed = step.parse(ctx.params)
        if isinstance(parsed, TrainJob):
            assert parsed.spec == example(framework)[2]


def _deployment(role: str, spec: InferencePipelineSpec | None = None, **kwargs: Any) -> Any:
    edge, cloud, example_spec = example()
    return builders.build_deployment(
        owner=OWNER,
        role=role,  # type: ignore[arg-type]
        spec=spec or example_spec,
        device=edge if role == "edge" else cloud,
        config_hash="h",
        images=IMAGES,
        **kwargs,
    )


def _nats_env(manifest: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(manifest)["containers"]
    return {
        e["name"]: e.get("value") or e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if e["name"].startswith("INFEREDGE_NATS_")
    }


@pytest.mark.parametrize("role", ["edge", "cloud"])
def test_each_pod_signs_in_to_nats_as_its_roles_identity(role: str) -> None:
    from inferedge.transport.permissions import permissions

    env = _nats_env(_deployment(role))
    secret = f"inferedge-nats-{role}"
    assert env == {
        "INFEREDGE_NATS_USER": {"name": secret, "key": "user", "optional": True},
        "INFEREDGE_NATS_PASSWORD": {"name": secret, "key": "password", "optional": True},
        "INFEREDGE_NATS_INBOX_PREFIX": f"_INBOX.inferedge.{role}",
    }
    # The prefix the pod gets is the one its identity may subscribe under, and no other's.
    allowed = permissions(role, "team-a", "digits").subscribe  # type: ignore[arg-type]
    assert f"{env['INFEREDGE_NATS_INBOX_PREFIX']}.>" in allowed
    assert pods.DEFAULT_NATS_SECRETS.for_role(role) == secret  # type: ignore[arg-type]


def test_the_operator_settings_name_the_role_secrets() -> None:
    from inferedge.controller.settings import OperatorOptions

    named = pods.NatsSecrets(edge="my-edge", cloud="my-cloud")
    assert OperatorOptions().nats_secrets == pods.DEFAULT_NATS_SECRETS
    for role in ("edge", "cloud"):
        env = _nats_env(_deployment(role, nats_secrets=named))
        assert env["INFEREDGE_NATS_USER"]["name"] == f"my-{role}"
        assert env["INFEREDGE_NATS_PASSWORD"]["name"] == f"my-{role}"


def test_a_pipelines_own_nats_secret_wins_over_the_role_secrets() -> None:
    spec = example()[2]
    spec = spec.model_copy(
        update={
            "messaging": spec.messaging.model_copy(
                update={"secret_ref": SecretKeyRef(name="team-a-nats")}
            )
        }
    )
    env = _nats_env(_deployment("cloud", spec))
    assert {v["name"] for k, v in env.items() if k != "INFEREDGE_NATS_INBOX_PREFIX"} == {
        "team-a-nats"
    }
    assert set(env) == {
        "INFEREDGE_NATS_USER",
        "INFEREDGE_NATS_PASSWORD",
        "INFEREDGE_NATS_TOKEN",
        "INFEREDGE_NATS_INBOX_PREFIX",
    }


def test_no_credential_is_in_a_config_map_an_arg_or_a_job() -> None:
    manifests = all_manifests()
    config = manifests[-1]
    assert config["kind"] == "ConfigMap"
    for key in config["data"]:
        assert not any(word in key for word in ("USER", "PASSWORD", "TOKEN", "CREDS", "KEY"))
    for manifest in with_pods():
        (container,) = pod_spec(manifest)["containers"]
        assert not any("nats" in arg.lower() and "pass" in arg.lower() for arg in container["args"])
        names = {e["name"] for e in container["env"]}
        if manifest["kind"] == "Job":  # steps never talk to NATS
            assert not any(n.startswith("INFEREDGE_NATS_") for n in names)


@pytest.mark.parametrize("role", ["edge", "cloud"])
def test_the_serving_settings_reach_the_serve_flags(
    role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, spec = example()
    inference = spec.inference.model_copy(
        update={
            "offloads_in_flight": 3,
            "cloud_batching": CloudBatchingSpec(
                max_batch_size=16, max_wait_ms=2.5, max_queued_samples=64, max_in_flight=40
            ),
        }
    )
    data = builders.runtime_config(spec.model_copy(update={"inference": inference}), SET, PIN)
    (container,) = pod_spec(_deployment(role))["containers"]
    command, rest, prefix = _command(container["args"])
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    params = command.make_context("inferedge", list(rest), auto_envvar_prefix=prefix).params
    names = ("offloads_in_flight", "max_batch_size", "max_wait_ms", "max_queued_samples",
             "max_in_flight")  # fmt: skip
    assert [params[n] for n in names] == [3, 16, 2.5, 64, 40]


@pytest.mark.parametrize("role", ["edge", "cloud"])
def test_the_edge_profile_s_tuning_reaches_the_serve_command(
    role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge, _, spec = example()
    tuning = TuningSpec(optimiser="bayes", window_requests=50, max_batch=8)
    tuned = edge.model_copy(update={"tuning": tuning})
    data = builders.runtime_config(spec, SET, PIN, edge=tuned)
    untuned = edge.model_copy(update={"tuning": None})
    assert "INFEREDGE_SERVE_TUNING" not in builders.runtime_config(spec, SET, PIN, edge=untuned)
    (container,) = pod_spec(_deployment(role))["containers"]
    command, rest, prefix = _command(container["args"])
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    params = command.make_context("inferedge", list(rest), auto_envvar_prefix=prefix).params
    # the same model on both sides; the cloud parses it too, and ignores it
    assert params["tuning"] == tuning


def test_the_plan_s_link_reaches_the_edge_s_link_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    edge, _, spec = example()
    data = builders.runtime_config(spec, SET, PIN, edge=edge)
    link = link_for(spec, edge)
    (container,) = pod_spec(_deployment("edge"))["containers"]
    command, rest, prefix = _command(container["args"])
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    params = command.make_context("inferedge", list(rest), auto_envvar_prefix=prefix).params
    assert (params["link_bandwidth_mbps"], params["link_rtt_ms"]) == (
        link.bandwidth_mbps, link.rtt_ms,
    )  # fmt: skip


def test_only_an_edge_that_tunes_its_clocks_mounts_the_clock_agent_s_directory() -> None:
    edge, _, spec = example()

    def mounts(role: Role, device: DeviceProfileSpec) -> tuple[list[Any], list[Any]]:
        deployment = builders.build_deployment(
            owner=OWNER, role=role, spec=spec, device=device, config_hash="h", images=IMAGES
        )
        pod = pod_spec(deployment)
        (container,) = pod["containers"]
        agent = [v for v in pod["volumes"] if v["name"] == "clock-agent"]
        return agent, [m for m in container["volumeMounts"] if m["name"] == "clock-agent"]

    assert mounts("edge", edge.model_copy(update={"tuning": None})) == ([], [])
    clocks = edge.model_copy(update={"tuning": TuningSpec()})
    volumes, mounted = mounts("edge", clocks)
    assert volumes == [{"name": "clock-agent",
                        "hostPath": {"path": "/run/inferedge", "type": "Directory"}}]  # fmt: skip
    assert mounted == [{"name": "clock-agent", "mountPath": "/run/inferedge", "readOnly": True}]
    batch_only = edge.model_copy(update={"tuning": TuningSpec(clocks=False)})
    assert mounts("edge", batch_only) == ([], [])
    # a node directory of the admin's choosing is mounted where serve looks for the socket
    elsewhere = builders.build_deployment(
        owner=OWNER, role="edge", spec=spec, device=clocks, config_hash="h", images=IMAGES,
        clock_agent_dir="/var/run/clocks",
    )  # fmt: skip
    pod = pod_spec(elsewhere)
    assert [v["hostPath"]["path"] for v in pod["volumes"] if v["name"] == "clock-agent"] == [
        "/var/run/clocks"
    ]
    (container,) = pod["containers"]
    assert {m["mountPath"] for m in container["volumeMounts"] if m["name"] == "clock-agent"} == {
        "/run/inferedge"
    }
    # the pod stays non-root and read-only whatever it mounts
    deployment = builders.build_deployment(
        owner=OWNER, role="edge", spec=spec, device=clocks, config_hash="h", images=IMAGES
    )
    (container,) = pod_spec(deployment)["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod_spec(deployment)["securityContext"]["runAsNonRoot"] is True


def test_an_adapting_pipeline_s_switching_reaches_the_edge_s_serve_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    edge, _, spec = example()
    assert "INFEREDGE_SERVE_ADAPT" not in builders.runtime_config(spec, SET, PIN, edge=edge)
    adapting = spec.model_copy(
        update={
            "adaptation": AdaptationSpec.model_validate(
                {"deadlineMs": 40, "switching": {"confirmations": 5, "minDwellS": 0.5}}
            )
        }
    )
    data = builders.runtime_config(adapting, SET, PIN, edge=edge)
    (container,) = pod_spec(_deployment("edge"))["containers"]
    command, rest, prefix = _command(container["args"])
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    params = command.make_context("inferedge", list(rest), auto_envvar_prefix=prefix).params
    assert (params["adapt"], params["switch_confirmations"], params["switch_min_dwell_s"]) == (
        "follow", 5, 0.5,
    )  # fmt: skip
