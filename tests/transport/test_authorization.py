"""The bus with identities, against a real nats-server that authorizes: who may do what.

One server declares the four identities of pipeline `test/auth` with fresh random passwords
(exactly what `inferedge run` does) and NATS's default max_payload of 1 MiB, so a 2 MiB tensor
is chunked in both directions.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
import pytest_asyncio

from inferedge.core.identities import Identity
from inferedge.core.roles import Role
from inferedge.transport.client import Handler, Headers, Messenger
from inferedge.transport.codec import Payload
from inferedge.transport.control import ReloadAck, ReloadCommand, reload_pipeline
from inferedge.transport.errors import AuthorizationError, PermissionDenied
from inferedge.transport.headers import MiB
from inferedge.transport.identities import Credentials, fresh_credentials, server_users
from inferedge.transport.server import EmbeddedNats
from inferedge.transport.settings import NatsSettings
from inferedge.transport.subjects import QUEUE_GROUP, reload_subject, replica_subject, subject

NAMESPACE, PIPELINE = "test", "auth"
OFFLOAD = subject(NAMESPACE, PIPELINE, "offload")
BEAT = subject(NAMESPACE, PIPELINE, "beat")
REPLICA = replica_subject(NAMESPACE, PIPELINE, "nano", "nano-0")
# Requests that the server refuses get no answer: this bounds how long the test waits for it.
REFUSED_WAIT_S = 0.5


@pytest.fixture(scope="module")
def credentials() -> dict[Identity, Credentials]:
    return fresh_credentials()


@pytest.fixture(scope="module")
def server(credentials: dict[Identity, Credentials]) -> Iterator[EmbeddedNats]:
    users = server_users(list(credentials.values()), NAMESPACE, PIPELINE)
    with EmbeddedNats(max_payload=MiB, users=users) as nats:
        yield nats


async def connect(server: EmbeddedNats, credentials: Credentials) -> Messenger:
    return await Messenger.connect(
        settings=credentials.settings(server.url), name=f"test-{credentials.identity}"
    )


@pytest_asyncio.fixture
async def edge(
    server: EmbeddedNats, credentials: dict[Identity, Credentials]
) -> AsyncIterator[Messenger]:
    async with await connect(server, credentials["edge"]) as messenger:
        yield messenger


@pytest_asyncio.fixture
async def cloud(
    server: EmbeddedNats, credentials: dict[Identity, Credentials]
) -> AsyncIterator[Messenger]:
    async with await connect(server, credentials["cloud"]) as messenger:
        yield messenger


@pytest_asyncio.fixture
async def control(
    server: EmbeddedNats, credentials: dict[Identity, Credentials]
) -> AsyncIterator[Messenger]:
    async with await connect(server, credentials["control"]) as messenger:
        yield messenger


@pytest_asyncio.fixture
async def dispatcher(
    server: EmbeddedNats, credentials: dict[Identity, Credentials]
) -> AsyncIterator[Messenger]:
    async with await connect(server, credentials["dispatcher"]) as messenger:
        yield messenger


async def echo(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
    return headers, payload


def acknowledge(role: Role) -> Handler:
    async def handler(headers: Headers, payload: Payload) -> tuple[Headers, Payload]:
        command = ReloadCommand.model_validate_json(bytes(payload))
        threshold = command.threshold if command.threshold is not None else 1.0
        ack = ReloadAck(role=role, plan_hash="0123456789abcdef", threshold=threshold)
        return {}, ack.model_dump_json().encode()

    return handler


# -- signing in ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_client_without_credentials_is_refused(server: EmbeddedNats) -> None:
    with pytest.raises(AuthorizationError, match=r"refused to sign in.*without credentials"):
        await Messenger.connect(settings=NatsSettings(servers=(server.url,)))


@pytest.mark.asyncio
async def test_a_wrong_password_is_refused_and_never_shown(
    server: EmbeddedNats, credentials: dict[Identity, Credentials]
) -> None:
    real = credentials["control"]
    wrong = Credentials("control", real.user, real.password[::-1])
    with pytest.raises(AuthorizationError) as caught:
        await connect(server, wrong)
    text = str(caught.value)
    assert "as user 'inferedge-control'" in text
    assert wrong.password not in text
    assert real.password not in text
    assert "\n" not in text


def test_passwords_are_fresh_random_and_not_in_repr() -> None:
    first, second = fresh_credentials(), fresh_credentials()
    for identity, creds in first.items():
        assert len(creds.password) >= 40
        assert creds.password != second[identity].password
        assert creds.password not in repr(creds)
        assert creds.password not in repr(creds.settings("nats://127.0.0.1:4222"))
    assert len({c.password for c in first.values()}) == len(first)


def test_the_server_config_is_private_and_passwords_stay_off_its_command_line(
    server: EmbeddedNats, credentials: dict[Identity, Credentials]
) -> None:
    assert server.log_path is not None
    config = server.log_path.parent / "nats-server.conf"
    assert config.stat().st_mode & 0o777 == 0o600
    assert server.log_path.parent.stat().st_mode & 0o077 == 0
    text = config.read_text()
    assert all(c.password in text for c in credentials.values())
    process = server._process
    assert process is not None
    with open(f"/proc/{process.pid}/cmdline", "rb") as cmdline:
        argv = cmdline.read().decode()
    assert not any(c.password in argv for c in credentials.values())
    log = server.log_path.read_text()
    assert not any(c.password in log for c in credentials.values())
    assert all(c.password not in repr(server) for c in credentials.values())


# -- the right identities work end to end ----------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [10 * 1024, 2 * MiB], ids=["10KiB", "2MiB-chunked"])
async def test_an_edge_offloads_to_the_cloud(edge: Messenger, cloud: Messenger, size: int) -> None:
    await cloud.serve(OFFLOAD, QUEUE_GROUP, echo)
    sent = np.random.default_rng(size).integers(0, 256, size=size, dtype=np.uint8)
    headers, payload = await edge.request(OFFLOAD, {"Tag": "x"}, sent.data, timeout=10)
    assert headers.get("Tag") == "x"
    assert np.array_equal(np.frombuffer(payload, np.uint8), sent)


@pytest.mark.asyncio
async def test_control_reloads_cloud_then_edge_and_gets_their_acks(
    edge: Messenger, cloud: Messenger, control: Messenger
) -> None:
    await cloud.serve(reload_subject(NAMESPACE, PIPELINE, "cloud"), None, acknowledge("cloud"))
    await edge.serve(reload_subject(NAMESPACE, PIPELINE, "edge"), None, acknowledge("edge"))
    acks = await reload_pipeline(
        control, NAMESPACE, PIPELINE, threshold=0.7, replicas={"cloud": 1, "edge": 1}, timeout_s=10
    )
    assert [(a.role, a.threshold) for a in acks] == [("cloud", 0.7), ("edge", 0.7)]


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [100, 2 * MiB], ids=["small", "chunked"])
async def test_a_dispatcher_sends_requests_to_a_replica_which_beats_to_it(
    edge: Messenger, dispatcher: Messenger, size: int
) -> None:
    await edge.serve(REPLICA, None, echo)
    await dispatcher.serve(BEAT, None, echo)
    sent = np.random.default_rng(size).integers(0, 256, size=size, dtype=np.uint8)
    _, payload = await dispatcher.request(REPLICA, {}, sent.data, timeout=10)
    assert np.array_equal(np.frombuffer(payload, np.uint8), sent)
    _, beat = await edge.request(BEAT, {}, b"{}", timeout=10)
    assert bytes(beat) == b"{}"


# -- everything else is refused --------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("sender", ["edge", "cloud"])
async def test_only_control_may_publish_reloads(
    sender: str, edge: Messenger, cloud: Messenger, control: Messenger
) -> None:
    reloads = {
        "cloud": await cloud.serve(
            reload_subject(NAMESPACE, PIPELINE, "cloud"), None, acknowledge("cloud")
        ),
        "edge": await edge.serve(
            reload_subject(NAMESPACE, PIPELINE, "edge"), None, acknowledge("edge")
        ),
    }
    intruder = edge if sender == "edge" else cloud
    with pytest.raises(PermissionDenied, match=r"publish to inferedge\.test\.auth\.reload\.cloud"):
        await reload_pipeline(
            intruder, NAMESPACE, PIPELINE, threshold=0.1, replicas={"cloud": 1}, timeout_s=10
        )
    # The server dropped the refused command: the servers only ever see control's.
    await reload_pipeline(
        control, NAMESPACE, PIPELINE, threshold=0.5, replicas={"cloud": 1, "edge": 1}
    )
    assert (reloads["cloud"].handled, reloads["edge"].handled) == (1, 1)


@pytest.mark.asyncio
@pytest.mark.parametrize("queue", [QUEUE_GROUP, None], ids=["in-the-queue-group", "alone"])
async def test_an_edge_may_not_take_offloads(edge: Messenger, queue: str | None) -> None:
    with pytest.raises(PermissionDenied, match=r"cannot serve inferedge\.test\.auth\.offload"):
        await edge.serve(OFFLOAD, queue, echo)


@pytest.mark.asyncio
async def test_a_cloud_serves_offloads_only_in_the_queue_group(cloud: Messenger) -> None:
    with pytest.raises(PermissionDenied, match=r"subscribe to it$"):
        await cloud.serve(OFFLOAD, None, echo)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("who", "where"),
    [
        ("edge", reload_subject(NAMESPACE, PIPELINE, "cloud")),
        ("cloud", reload_subject(NAMESPACE, PIPELINE, "edge")),
        ("edge", "_INBOX.inferedge.cloud.snoop"),
        ("cloud", "_INBOX.inferedge.control.snoop"),
        ("control", OFFLOAD),
        ("control", "inferedge.>"),
        ("dispatcher", OFFLOAD),
        ("dispatcher", REPLICA),
        ("cloud", REPLICA),
        ("edge", BEAT),
        ("cloud", BEAT),
    ],
)
async def test_nobody_subscribes_beyond_what_it_needs(
    who: str,
    where: str,
    *,
    edge: Messenger,
    cloud: Messenger,
    control: Messenger,
    dispatcher: Messenger,
) -> None:
    messenger = {"edge": edge, "cloud": cloud, "control": control, "dispatcher": dispatcher}[who]
    with pytest.raises(PermissionDenied, match=re.escape(where)):
        await messenger.serve(where, None, echo)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("who", "where"),
    [
        ("control", OFFLOAD),
        ("cloud", OFFLOAD),
        ("edge", subject(NAMESPACE, "other", "offload")),
        ("edge", subject("other", PIPELINE, "offload")),
        ("dispatcher", OFFLOAD),
        ("edge", REPLICA),
        ("cloud", REPLICA),
        ("control", REPLICA),
        ("dispatcher", replica_subject(NAMESPACE, "other", "nano", "nano-0")),
    ],
)
async def test_only_the_pipelines_own_senders_may_send_it_work(
    who: str,
    where: str,
    *,
    edge: Messenger,
    cloud: Messenger,
    control: Messenger,
    dispatcher: Messenger,
) -> None:
    messenger = {"edge": edge, "cloud": cloud, "control": control, "dispatcher": dispatcher}[who]
    with pytest.raises(PermissionDenied, match=f"publish to {re.escape(where)}"):
        await messenger.request(where, {}, b"x", timeout=REFUSED_WAIT_S)


@pytest.mark.asyncio
async def test_a_client_outside_its_inbox_prefix_is_told_so(
    server: EmbeddedNats, credentials: dict[Identity, Credentials], cloud: Messenger
) -> None:
    await cloud.serve(OFFLOAD, QUEUE_GROUP, echo)
    creds = credentials["edge"]
    settings = NatsSettings(servers=(server.url,), user=creds.user, password=creds.password)
    async with await Messenger.connect(settings=settings) as edge:
        with pytest.raises(PermissionDenied, match="INFEREDGE_NATS_INBOX_PREFIX"):
            await edge.request(OFFLOAD, {}, b"x", timeout=REFUSED_WAIT_S)
