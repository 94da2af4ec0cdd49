"""Transport fixtures: real nats-servers (8 MiB and 1 MiB max_payload) and Messengers on them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from inferedge.transport.chunking import ReassemblyLimits
from inferedge.transport.client import Messenger
from inferedge.transport.headers import MiB
from inferedge.transport.server import EmbeddedNats

# Short enough that a stalled stream fails a test in well under a second.
FAST_LIMITS = ReassemblyLimits(idle_timeout_s=0.5)


@pytest.fixture(scope="session")
def nats_server() -> Iterator[EmbeddedNats]:
    """A nats-server with the local default max_payload (8 MiB), shared by the session."""
    with EmbeddedNats() as server:
        yield server


@pytest.fixture(scope="session")
def small_nats_server() -> Iterator[EmbeddedNats]:
    """A nats-server with NATS's default max_payload of 1 MiB, so big messages are chunked."""
    with EmbeddedNats(max_payload=MiB) as server:
        yield server


@pytest.fixture(params=["8MiB", "1MiB"])
def any_nats_server(request: pytest.FixtureRequest) -> EmbeddedNats:
    """Each server in turn: behaviour must not depend on whether messages are chunked."""
    name = "nats_server" if request.param == "8MiB" else "small_nats_server"
    server: EmbeddedNats = request.getfixturevalue(name)
    return server


@pytest_asyncio.fixture
async def client(small_nats_server: EmbeddedNats) -> AsyncIterator[Messenger]:
    """A requesting Messenger on the 1 MiB server."""
    async with await Messenger.connect(small_nats_server.url, name="test-client") as messenger:
        yield messenger


@pytest_asyncio.fixture
async def worker(small_nats_server: EmbeddedNats) -> AsyncIterator[Messenger]:
    """A serving Messenger on the 1 MiB server, giving up on a silent chunk stream fast."""
    async with await Messenger.connect(
        small_nats_server.url, name="test-worker", limits=FAST_LIMITS
    ) as messenger:
        yield messenger
