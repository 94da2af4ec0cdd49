"""`inferedge run`'s broker and servers with identities: real `inferedge serve` processes on an
authorizing nats-server, each signed in as its own identity, the runner as control."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from inferedge.core.roles import Role
from inferedge.local.processes import ServerProcess, ServerProcessError, child_env
from inferedge.local.serving import broker_and_servers
from inferedge.transport.client import Messenger
from inferedge.transport.control import reload_pipeline
from inferedge.transport.identities import fresh_credentials, server_users
from inferedge.transport.server import EmbeddedNats
from tests.runtime.conftest import Exported, infer


def args(exported: Exported, role: Role, *extra: str) -> list[str]:
    root = exported.store.root
    prefix = exported.prefixes["main"]
    return ["--store", str(root), "--prefix", prefix, "--manifest-sha256", exported.pin(prefix),
            "--port", "0", "--cache-dir", str(root.parent / f"cache-id-{role}"),
            *extra]  # fmt: skip


def test_servers_offload_and_reload_each_as_its_own_identity(
    exported: Exported, tmp_path: Path, images: Callable[..., np.ndarray]
) -> None:
    x = images(2)
    role_args: dict[Role, list[str]] = {
        "cloud": args(exported, "cloud"),
        "edge": args(exported, "edge", "--threshold", "2"),
    }
    with broker_and_servers(
        "default", "main", role_args, tmp_path, env={}, max_payload=1 << 20, start_timeout_s=60
    ) as bus:
        assert infer(bus.started["edge"].url, x)["parameters"]["location"] == ["cloud", "cloud"]

        async def reload_as_control_then_as_nobody() -> None:
            async with await Messenger.connect(settings=bus.control) as control:
                acks = await reload_pipeline(
                    control, "default", "main", threshold=0.0, replicas={"cloud": 1, "edge": 1}
                )
                assert [a.role for a in acks] == ["cloud", "edge"]

        asyncio.run(reload_as_control_then_as_nobody())
        # c_thr 0: every sample now leaves at the first exit, on the edge.
        assert infer(bus.started["edge"].url, x)["parameters"]["location"] == ["edge", "edge"]
        assert bus.control.user == "inferedge-control"
    for role in ("edge", "cloud"):
        log = (tmp_path / f"{role}.log").read_text()
        assert "password" not in log.lower()


def test_a_server_with_another_roles_identity_does_not_start(
    exported: Exported, tmp_path: Path
) -> None:
    credentials = fresh_credentials()
    users = server_users(list(credentials.values()), "default", "main")
    with EmbeddedNats(users=users) as nats:
        impostor = ServerProcess(
            "cloud",
            ["--nats-url", nats.url, *args(exported, "cloud")],
            tmp_path / "cloud.log",
            env=credentials["edge"].env(),
            start_timeout_s=60,
        )
        with pytest.raises(ServerProcessError, match="does not allow this identity") as caught:
            impostor.start()
        assert credentials["edge"].password not in str(caught.value)


def test_the_callers_nats_settings_never_reach_a_server() -> None:
    inherited = {"PATH": "/bin", "INFEREDGE_NATS_TOKEN": "t", "INFEREDGE_NATS_CREDS": "/x"}
    given = fresh_credentials()["edge"].env()
    env = child_env(inherited, given)
    assert env == {"PATH": "/bin", **given}
    assert "INFEREDGE_NATS_TOKEN" not in child_env(os.environ | inherited, {})
