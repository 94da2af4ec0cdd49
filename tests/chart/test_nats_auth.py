"""The chart's NATS identities: Secrets, the server's users and permissions, and a real
nats-server running exactly the rendered config with the rendered Secrets' values."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferedge.controller import pods
from inferedge.core.identities import IDENTITIES, inbox_prefix
from inferedge.core.roles import Role
from inferedge.transport.client import Headers, Messenger
from inferedge.transport.codec import Payload
from inferedge.transport.control import ReloadAck, reload_pipeline
from inferedge.transport.errors import PermissionDenied
from inferedge.transport.identities import (
    chart_auth_conf,
    main,
    read_auth_conf,
    server_env_names,
)
from inferedge.transport.permissions import permissions
from inferedge.transport.server import EmbeddedNats
from inferedge.transport.settings import NatsSettings
from inferedge.transport.subjects import QUEUE_GROUP, reload_subject, subject
from tests.chart.helpers import CHART, NAMESPACE, ROOT, Manifest, find, one, render

AUTH = "inferedge-nats-auth"


def secrets(objects: list[Manifest]) -> dict[tuple[str, str], dict[str, str]]:
    """(namespace, name) -> decoded data of every rendered Secret."""
    return {
        (s["metadata"]["namespace"], s["metadata"]["name"]): {
            k: base64.b64decode(v).decode() for k, v in s["data"].items()
        }
        for s in find(objects, "Secret")
    }


def auth_conf(objects: list[Manifest]) -> str:
    (config,) = find(objects, "ConfigMap", AUTH)
    text: str = config["data"]["auth.conf"]
    return text


def test_the_shipped_server_config_is_the_generated_one() -> None:
    shipped = CHART / "files" / "nats-auth.conf"
    assert shipped.read_text() == chart_auth_conf()
    assert main(["--check", "--out", str(shipped)], echo=lambda _: None) == 0
    assert auth_conf(render()).strip() == chart_auth_conf().strip()


def test_each_user_has_exactly_its_identitys_permissions_in_every_pipeline() -> None:
    users = read_auth_conf(auth_conf(render()))
    assert users == {f"${server_env_names(i)[0]}": permissions(i) for i in IDENTITIES}
    edge = users["$INFEREDGE_NATS_EDGE_USER"]
    assert edge.publish == (
        "inferedge.*.*.offload",
        "inferedge.*.*.beat",
        "_INBOX.inferedge.cloud.>",
        "_INBOX.inferedge.dispatcher.>",
    )
    assert not any(s.endswith(".reload.edge") or "reload" in s for s in edge.publish)
    cloud = users["$INFEREDGE_NATS_CLOUD_USER"]
    assert f"inferedge.*.*.offload {QUEUE_GROUP}" in cloud.subscribe
    every = [s for p in users.values() for s in (*p.publish, *p.subscribe)]
    assert ">" not in every
    assert all(s.startswith(("inferedge.*.*.", "_INBOX.inferedge.")) for s in every)


def test_the_config_map_holds_no_secret() -> None:
    objects = render()
    conf = auth_conf(objects)
    for data in secrets(objects).values():
        assert data["password"] not in conf
    assert "$INFEREDGE_NATS_EDGE_PASSWORD" in conf


def test_generated_secrets_reach_every_pipeline_namespace_with_the_same_values() -> None:
    found = secrets(render())
    assert set(found) == {
        (NAMESPACE, "inferedge-nats-edge"),
        (NAMESPACE, "inferedge-nats-cloud"),
        (NAMESPACE, "inferedge-nats-control"),
        (NAMESPACE, "inferedge-nats-dispatcher"),
        ("default", "inferedge-nats-edge"),
        ("default", "inferedge-nats-cloud"),
        ("default", "inferedge-nats-dispatcher"),
    }, "control stays in the release namespace"
    for role in ("edge", "cloud"):
        name = pods.DEFAULT_NATS_SECRETS.for_role(role)  # the names the operator's pods use
        assert found[(NAMESPACE, name)] == found[("default", name)]
    passwords = {d["password"] for d in found.values()}
    assert len(passwords) == len(IDENTITIES)
    assert all(len(p) == 40 and p.isalnum() for p in passwords)
    assert {d["user"] for d in found.values()} == {f"inferedge-{i}" for i in IDENTITIES}


@pytest.mark.parametrize(
    ("values", "namespaces"),
    [
        ({"rbac": {"scope": "namespace", "watchNamespaces": ["team-a", "team-b"]}},
         {"team-a", "team-b", NAMESPACE}),
        ({"rbac": {"scope": "namespace"}}, {NAMESPACE}),
        ({"natsAuth": {"pipelineNamespaces": ["ml", NAMESPACE]}}, {"ml", NAMESPACE}),
    ],
)  # fmt: skip
def test_pipeline_namespaces_follow_the_watched_ones(
    values: dict[str, Any], namespaces: set[str]
) -> None:
    found = secrets(render(values))
    assert {ns for ns, name in found if name == "inferedge-nats-edge"} == namespaces


def test_own_secrets_or_no_auth() -> None:
    own = render({"natsAuth": {"createSecrets": False}})
    assert not find(own, "Secret")
    assert find(own, "ConfigMap", AUTH)
    off = render({"natsAuth": {"enabled": False}})
    assert not find(off, "Secret")
    assert not find(off, "ConfigMap", AUTH)
    (container,) = one(off, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert not any(e["name"].startswith("INFEREDGE_NATS_") for e in container["env"])


def test_the_operator_signs_in_as_control_from_its_secret() -> None:
    (container,) = one(render(), "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    for var, key in (("INFEREDGE_NATS_USER", "user"), ("INFEREDGE_NATS_PASSWORD", "password")):
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("inferedge-nats-control", key)
        assert "value" not in env[var]
    assert env["INFEREDGE_NATS_INBOX_PREFIX"]["value"] == inbox_prefix("control")
    assert not any("nats" in arg.lower() for arg in container["args"])


# -- the rendered config, served by a real nats-server ----------------------------------------


def _ack(role: str) -> Any:
    async def handler(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
        ack = ReloadAck(role=role, plan_hash="0123456789abcdef", threshold=0.5)  # type: ignore[arg-type]
        return {}, ack.model_dump_json().encode()

    return handler


async def _echo(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
    return headers, payload


def test_a_real_server_enforces_the_rendered_identities(tmp_path: Path) -> None:
    """The NATS pod's view: auth.conf from the ConfigMap, variables from the Secrets."""
    objects = render({"natsAuth": {"pipelineNamespaces": ["team-a"]}})
    conf = tmp_path / "inferedge-nats-auth" / "auth.conf"
    conf.parent.mkdir()
    conf.write_text(auth_conf(objects))
    found = secrets(objects)
    env: dict[str, str] = {}
    for identity in IDENTITIES:
        user_var, password_var = server_env_names(identity)
        data = found[(NAMESPACE, f"inferedge-nats-{identity}")]
        env |= {user_var: data["user"], password_var: data["password"]}

    def settings(identity: str, url: str) -> NatsSettings:
        # An edge pod in team-a reads its own namespace's copy; the operator the release's.
        namespace = NAMESPACE if identity == "control" else "team-a"
        data = found[(namespace, f"inferedge-nats-{identity}")]
        prefix = inbox_prefix(identity)  # type: ignore[arg-type]
        return NatsSettings((url,), user=data["user"], password=data["password"],
                            inbox_prefix=prefix)  # fmt: skip

    async def check(url: str) -> None:
        offload = subject("team-a", "digits", "offload")
        async with (
            await Messenger.connect(settings=settings("edge", url)) as edge,
            await Messenger.connect(settings=settings("cloud", url)) as cloud,
            await Messenger.connect(settings=settings("control", url)) as control,
        ):
            await cloud.serve(offload, QUEUE_GROUP, _echo)
            assert (await edge.request(offload, {"A": "b"}, b"x" * 1000))[0]["A"] == "b"
            for role, messenger in (("cloud", cloud), ("edge", edge)):
                await messenger.serve(reload_subject("team-a", "digits", role), None, _ack(role))
            replicas: dict[Role, int] = {"cloud": 1, "edge": 1}
            acks = await reload_pipeline(control, "team-a", "digits", threshold=0.5,
                                         replicas=replicas)  # fmt: skip
            assert [a.role for a in acks] == ["cloud", "edge"]
            with pytest.raises(PermissionDenied):
                await reload_pipeline(edge, "team-a", "digits", threshold=0.1, replicas=replicas)
            with pytest.raises(PermissionDenied):
                await edge.serve(offload, QUEUE_GROUP, _echo)

    with EmbeddedNats(includes=[conf], env=env) as nats:
        asyncio.run(check(nats.url))


def test_the_stack_gives_its_nats_the_chart_users() -> None:
    stack = yaml.safe_load((ROOT / "charts" / "inferedge-stack" / "values.yaml").read_text())
    nats = stack["nats"]
    include = nats["config"]["merge"]["00$include"]
    (mount,) = [p["value"] for p in nats["container"]["patch"] if p["path"] == "/volumeMounts/-"]
    (volume,) = [p["value"] for p in nats["podTemplate"]["patch"] if p["path"] == "/spec/volumes/-"]
    # The nats chart's config lives in /etc/nats-config; includes are relative to it.
    assert str(Path("/etc/nats-config", include).resolve()) == f"{mount['mountPath']}/auth.conf"
    assert volume == {"name": mount["name"], "configMap": {"name": AUTH}}
    needed = {v for i in IDENTITIES for v in server_env_names(i)}
    assert set(nats["container"]["env"]) == needed
    for var, source in nats["container"]["env"].items():
        ref = source["valueFrom"]["secretKeyRef"]
        identity = var.split("_")[2].lower()
        assert ref == {"name": f"inferedge-nats-{identity}", "key": var.rsplit("_", 1)[1].lower()}
