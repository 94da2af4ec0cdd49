"""The children of a pipeline with several edge pools and a site (issue #15), pure: one edge
Deployment per pool on its own class's nodes, the site ConfigMap, the dispatcher and its
Service; the single form's objects stay exactly what they were."""

from __future__ import annotations

from typing import Any

import pytest

from inferedge.api.edge_pools import EdgePool
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.api.site import parse_site
from inferedge.controller import builders, naming, pods, site_builders, site_plan
from tests.controller.test_builders import (
    IMAGES,
    OWNER,
    PIN,
    SET,
    _command,
    _reads,
    _settings_variables,
    example,
    pod_spec,
)
from tests.controller.test_site_plan import decided, site_example

SITE_OWNER = {**OWNER, "metadata": {**OWNER["metadata"], "name": "collaborative"}}


def pool_deployment(
    spec: InferencePipelineSpec, pool: EdgePool, answer_at: int | None = None
) -> dict[str, Any]:
    devices, _ = site_example()
    return builders.build_deployment(
        owner=SITE_OWNER,
        role="edge",
        spec=spec,
        device=devices[pool.profile],
        config_hash="h",
        images=IMAGES,
        pool=pool,
        answer_at=answer_at,
    )


def env_of(manifest: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(manifest)["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def without_distribution() -> InferencePipelineSpec:
    _, spec = site_example()
    return spec.model_copy(update={"distribution": None})


def test_each_pool_has_its_own_deployment_on_its_class_s_nodes() -> None:
    spec = without_distribution()
    built = [pool_deployment(spec, pool) for pool in spec.edge.resolved_pools()]
    assert [d["metadata"]["name"] for d in built] == [
        "collaborative-edge-nano",
        "collaborative-edge-xu4",
        "collaborative-edge-pi4",
    ]
    for deployment, pool, device in zip(
        built, ("nano", "xu4", "pi4"), ("jetson-nano", "odroid-xu4", "raspberry-pi4"), strict=True
    ):
        pod = pod_spec(deployment)
        assert pod["nodeSelector"] == {"kubernetes.io/arch": "arm64", "inferedge.io/device": device}
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels[naming.POOL_LABEL] == pool
        assert labels[naming.COMPONENT_LABEL] == "edge"  # the edge readers find every pool's pods
        assert deployment["metadata"]["labels"] == labels
        # Each Deployment selects its own pool's pods only.
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector[naming.POOL_LABEL] == pool
        assert selector.items() <= labels.items()
        assert deployment["spec"]["replicas"] == 1
        assert "INFEREDGE_POOL" not in env_of(deployment)  # no site: no dispatcher to join
        (owner,) = deployment["metadata"]["ownerReferences"]
        assert owner["uid"] == "uid-1"
    # Every pool serves the same set: the same runtime ConfigMap.
    assert {pod_spec(d)["containers"][0]["envFrom"][0]["configMapRef"]["name"] for d in built} == {
        "collaborative-runtime"
    }
    scaled = EdgePool(name="xu4", profile="odroid-xu4", replicas=4)
    assert pool_deployment(spec, scaled)["spec"]["replicas"] == 4


def test_the_single_form_is_what_it_was() -> None:
    edge, _, spec = example()
    plain = builders.build_deployment(
        owner=OWNER, role="edge", spec=spec, device=edge, config_hash="h", images=IMAGES
    )
    as_pool = builders.build_deployment(
        owner=OWNER,
        role="edge",
        spec=spec,
        device=edge,
        config_hash="h",
        images=IMAGES,
        pool=spec.edge.reference,
    )
    assert plain == as_pool
    assert plain["metadata"]["name"] == "digits-edge"
    assert naming.POOL_LABEL not in plain["metadata"]["labels"]
    assert plain["spec"]["selector"]["matchLabels"] == {
        naming.INSTANCE_LABEL: "digits",
        naming.COMPONENT_LABEL: "edge",
    }


def test_with_a_site_each_edge_pod_is_a_replica_of_its_pool() -> None:
    _, spec = site_example()
    nano = spec.edge.resolved_pools()[0]
    env = env_of(pool_deployment(spec, nano))
    assert env["INFEREDGE_POOL"] == "nano"
    assert env["INFEREDGE_REPLICA"] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
    }
    assert "INFEREDGE_ANSWER_AT_EXIT" not in env
    truncated = pool_deployment(spec, nano, answer_at=2)
    assert env_of(truncated)["INFEREDGE_ANSWER_AT_EXIT"] == "2"
    # A new version for the pool is a new pod template: its pods roll.
    assert builders.template_hash(truncated) != builders.template_hash(pool_deployment(spec, nano))


def test_an_edge_replica_s_settings_reach_the_serve_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, spec = site_example()
    deployment = pool_deployment(spec, spec.edge.resolved_pools()[1], answer_at=1)
    (container,) = pod_spec(deployment)["containers"]
    command, rest, prefix = _command(container["args"])
    env = env_of(deployment)
    env["INFEREDGE_REPLICA"] = "collaborative-edge-xu4-5d8f7c9b6-x2x7q"  # what the pod gets
    for name in ("INFEREDGE_POOL", "INFEREDGE_REPLICA", "INFEREDGE_ANSWER_AT_EXIT"):
        assert name in _reads(command, prefix)
        monkeypatch.setenv(name, env[name])
    for name, value in builders.runtime_config(spec, SET, PIN).items():
        monkeypatch.setenv(name, value)  # from the runtime ConfigMap
    ctx = command.make_context("inferedge", list(rest), auto_envvar_prefix=prefix)
    assert (ctx.params["pool"], ctx.params["answer_at_exit"]) == ("xu4", 1)
    assert ctx.params["replica"] == env["INFEREDGE_REPLICA"]


def site_children() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    devices, _ = site_example()
    spec, decision = decided()
    config = site_plan.site_config("team-a", "collaborative", spec, decision)
    site_map = site_builders.build_site_config_map(
        owner=SITE_OWNER, site_json=site_plan.site_json(config)
    )
    dispatcher = site_builders.build_dispatcher(
        owner=SITE_OWNER,
        spec=spec,
        cloud=devices["cloud-cpu"],
        site_hash=builders.template_hash(site_map) or "",
        images=IMAGES,
    )
    return site_map, dispatcher, site_builders.build_dispatcher_service(owner=SITE_OWNER)


def test_the_site_s_children_are_named_owned_and_labelled() -> None:
    site_map, dispatcher, service = site_children()
    assert [c["metadata"]["name"] for c in (site_map, dispatcher, service)] == [
        "collaborative-site",
        "collaborative-dispatcher",
        "collaborative-dispatcher",
    ]
    for child in (site_map, dispatcher, service):
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["uid"], owner["controller"]) == ("uid-1", True)
        assert child["metadata"]["labels"][naming.MANAGED_BY_LABEL] == naming.MANAGED_BY
        assert child["metadata"]["labels"][naming.PIPELINE_LABEL] == "collaborative"
    config = parse_site(site_map["data"]["site.json"], "site.json")
    assert [p.name for p in config.pools] == ["nano", "xu4", "pi4"]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == dispatcher["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == {
        naming.INSTANCE_LABEL: "collaborative",
        naming.COMPONENT_LABEL: "dispatcher",
    }


def test_the_dispatcher_runs_locked_down_like_the_other_pods() -> None:
    _, dispatcher, _ = site_children()
    pod = pod_spec(dispatcher)
    assert pod["securityContext"] == pods.pod_security()
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["image"] == "registry/runtime:1"
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/inferedge/site"]["readOnly"] is True
    assert {"name": "site", "configMap": {"name": "collaborative-site"}} in pod["volumes"]
    # On the cloud class's nodes, without its accelerator runtime.
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert "runtimeClassName" not in pod
    assert dispatcher["spec"]["replicas"] == 1


def test_the_dispatcher_runs_the_real_dispatch_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from inferedge.transport.permissions import permissions

    _, dispatcher, _ = site_children()
    (container,) = pod_spec(dispatcher)["containers"]
    assert container["command"] == ["inferedge"]
    assert container["args"] == [
        "dispatch", "--site", "/etc/inferedge/site/site.json", "--host", "0.0.0.0",
        "--port", "8080",
    ]  # fmt: skip
    command, rest, prefix = _command(container["args"])
    env = {e["name"]: e.get("value", "from-a-secret") for e in container["env"]}
    readable = _reads(command, prefix) | _settings_variables() | {"HOME", "MPLCONFIGDIR"}
    assert set(env) <= readable, f"read by nothing: {sorted(set(env) - readable)}"
    assert env["INFEREDGE_NATS_URL"] == "nats://nats.inferedge:4222"
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
               if "valueFrom" in e}  # fmt: skip
    assert secrets == {
        "INFEREDGE_NATS_USER": {"name": "inferedge-nats-dispatcher", "key": "user",
                                "optional": True},
        "INFEREDGE_NATS_PASSWORD": {"name": "inferedge-nats-dispatcher", "key": "password",
                                    "optional": True},
    }  # fmt: skip
    inbox = env["INFEREDGE_NATS_INBOX_PREFIX"]
    assert f"{inbox}.>" in permissions("dispatcher", "team-a", "collaborative").subscribe
    assert pods.DEFAULT_NATS_SECRETS.for_role("dispatcher") == "inferedge-nats-dispatcher"
    # click parses the arguments as in the pod, the site file where the ConfigMap mounts it.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = list(rest)
    args[args.index("--site") + 1] = __file__  # a file that exists here
    ctx = command.make_context("inferedge", args, auto_envvar_prefix=prefix)
    assert (ctx.params["host"], ctx.params["port"]) == ("0.0.0.0", 8080)


def test_a_new_decision_rolls_the_dispatcher() -> None:
    site_map, dispatcher, _ = site_children()
    annotations = dispatcher["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {naming.SITE_HASH: builders.template_hash(site_map)}
    devices, _ = site_example()
    distribution = {"targetRate": 20, "minAccuracy": 0.9}
    spec, decision = decided(distribution=distribution)
    config = site_plan.site_config("team-a", "collaborative", spec, decision)
    other = site_builders.build_site_config_map(
        owner=SITE_OWNER, site_json=site_plan.site_json(config)
    )
    assert builders.template_hash(other) != builders.template_hash(site_map)
    rolled = site_builders.build_dispatcher(
        owner=SITE_OWNER,
        spec=spec,
        cloud=devices["cloud-cpu"],
        site_hash=builders.template_hash(other) or "",
        images=IMAGES,
    )
    assert builders.template_hash(rolled) != builders.template_hash(dispatcher)
