"""The edge's limits: body size, JSON depth, rows, slow clients, refusals counted and logged at
a bounded rate, and decoding that never holds the event loop (shown by order, not by time)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.decoding import Decoder
from inferedge.runtime.http import make_app
from inferedge.runtime.metrics import RateLimitedLog
from inferedge.runtime.oip_codec import Limits
from inferedge.runtime.partition import Partition
from inferedge.runtime.policy import BatchPolicy
from tests.runtime.conftest import SHAPE
from tests.runtime.gates import GatedDecode, hear, tell
from tests.runtime.helpers import direct_offload

MODEL = "digits"
INFER = f"/v2/models/{MODEL}/infer"
NEVER = 2.0
Client = TestClient[web.Request, web.Application]
Serve = Callable[..., Any]


@pytest_asyncio.fixture
async def edge(edge_part: Partition, cloud_part: Partition) -> AsyncIterator[EdgeDataplane]:
    cloud = CloudDataplane(cloud_part, batch_policy=BatchPolicy(8, 2.0), threshold=NEVER)
    plane = EdgeDataplane(
        edge_part, threshold=NEVER, offload=direct_offload(cloud), offload_timeout_s=10.0
    )
    yield plane
    await plane.aclose()
    await cloud.aclose()


def tensor(rows: int = 1, data: Any = None) -> dict[str, Any]:
    values = [0.5] * (rows * 768) if data is None else data
    return {"inputs": [{"name": "input", "shape": [rows, *SHAPE], "datatype": "FP32",
                        "data": values}]}  # fmt: skip


async def one_line_error(response: Any, status: int) -> str:
    assert response.status == status, await response.text()
    payload = await response.json()
    assert set(payload) == {"error"}
    assert "\n" not in payload["error"]
    message: str = payload["error"]
    return message


def refused(text: str, reason: str) -> float:
    prefix = f'inferedge_refused_total{{reason="{reason}"}} '
    return float(next(line for line in text.splitlines() if line.startswith(prefix))[len(prefix) :])


@pytest.mark.asyncio
async def test_a_body_over_the_limit_is_refused(edge: EdgeDataplane) -> None:
    app = make_app(edge, model_name=MODEL, limits=Limits(max_body_bytes=1024))
    async with TestClient(TestServer(app)) as session:
        response = await session.post(INFER, json=tensor())  # Content-Length says it all
        expected = "body: expected at most 1024 bytes, got more"
        assert await one_line_error(response, 413) == expected

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(8):
                yield b" " * 512

        response = await session.post(INFER, data=chunks())
        assert await one_line_error(response, 413) == expected
        text = await (await session.get("/metrics")).text()
    assert refused(text, "body_too_large") == 2.0


@pytest.mark.asyncio
async def test_json_nested_too_deep_is_refused(edge: EdgeDataplane) -> None:
    async with TestClient(TestServer(make_app(edge, model_name=MODEL))) as session:
        deep = tensor(data=[[[[[0.5] * 4] * 4] * 4] * 3])
        for _ in range(30):
            deep["inputs"][0]["data"] = [deep["inputs"][0]["data"]]
        message = await one_line_error(await session.post(INFER, json=deep), 400)
        assert message.startswith("body: expected JSON nested at most 32 levels, got deeper at ")
        assert "inputs[0].data[0][0]" in message
        # deeper than the JSON parser goes at all: refused while parsing, as fast
        bomb = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        message = await one_line_error(await session.post(INFER, data=bomb), 400)
        assert message == "body: expected JSON nested at most 32 levels, got deeper"
        params = {**tensor(), "parameters": {"a": {"b": 1}}}
        message = await one_line_error(await session.post(INFER, json=params), 400)
        assert message.startswith("parameters.a: expected a string, number or boolean")
        text = await (await session.get("/metrics")).text()
    assert refused(text, "too_deep") == 2.0


@pytest.mark.asyncio
async def test_rows_over_the_limit_are_refused(edge: EdgeDataplane) -> None:
    app = make_app(edge, model_name=MODEL, limits=Limits(max_rows=4))
    async with TestClient(TestServer(app)) as session:
        assert (await session.post(INFER, json=tensor(4))).status == 200
        message = await one_line_error(await session.post(INFER, json=tensor(5)), 400)
        assert message == "inputs[0].shape: expected [N, 3, 16, 16] with 1 <= N <= 4, got " \
                          "[5, 3, 16, 16]"  # fmt: skip
        text = await (await session.get("/metrics")).text()
    assert refused(text, "too_many_rows") == 1.0


async def raw_connection(client: Client) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    server = client.server
    return await asyncio.open_connection(str(server.host), server.port)


@pytest.mark.asyncio
async def test_a_body_that_trickles_in_is_cut_off_with_a_408(edge: EdgeDataplane) -> None:
    app = make_app(edge, model_name=MODEL, limits=Limits(body_timeout_s=0.2))
    async with TestClient(TestServer(app)) as session:
        reader, writer = await raw_connection(session)
        writer.write(f"POST {INFER} HTTP/1.1\r\nHost: edge\r\nContent-Length: 1000\r\n"
                     "Content-Type: application/json\r\n\r\n{\"inputs\"".encode())  # fmt: skip
        await writer.drain()
        # The client sends nothing more: the server answers and closes on its own.
        answer = await reader.read()
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        assert json.loads(body) == {
            "error": "body: expected the whole body within 0.2 s, got it too slowly"
        }
        text = await (await session.get("/metrics")).text()
    assert refused(text, "body_timeout") == 1.0


@pytest.mark.asyncio
async def test_headers_that_trickle_in_are_cut_off(edge: EdgeDataplane) -> None:
    app = make_app(edge, model_name=MODEL, limits=Limits(header_timeout_s=0.2))
    async with TestClient(TestServer(app)) as session:
        reader, writer = await raw_connection(session)
        writer.write(b"GET /v2/health/live HTTP/1.1\r\nHost: ed")
        await writer.drain()
        assert await reader.read() == b""  # closed, with nothing to say to half a request
        writer.close()


@pytest.mark.asyncio
async def test_refusals_are_logged_at_a_bounded_rate(
    edge: EdgeDataplane, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    edge.metrics.refusal_log = RateLimitedLog(interval_s=10.0, clock=lambda: now[0])
    async with TestClient(TestServer(make_app(edge, model_name=MODEL))) as session:
        with caplog.at_level(logging.WARNING, logger="inferedge.runtime.http"):
            for _ in range(3):
                assert (await session.post(INFER, data=b"{")).status == 400
            assert (await session.post(INFER, json=tensor(300))).status == 400  # another reason
            now[0] = 10.0
            assert (await session.post(INFER, data=b"{")).status == 400
        text = await (await session.get("/metrics")).text()
    lines = [r.getMessage() for r in caplog.records if r.name == "inferedge.runtime.http"]
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"refused (invalid_json): POST {INFER}: body: expected a JSON")
    assert lines[1].startswith("refused (too_many_rows): ")
    assert lines[2].endswith("(2 more since the last one)")
    assert refused(text, "invalid_json") == 4.0


def big_body(rows: int) -> bytes:
    """A JSON request of `rows` samples with full-precision numbers: about 13 KiB a row."""
    values = np.random.default_rng(0).standard_normal(rows * 768)
    data = ",".join(map(repr, values.tolist()))
    return (
        f'{{"inputs": [{{"name": "input", "shape": [{rows}, 3, 16, 16], "datatype": "FP32", '
        f'"data": [{data}]}}]}}'
    ).encode()


@pytest.mark.asyncio
@pytest.mark.timeout(300)  # a decode on the event loop would deadlock here, not fail
@pytest.mark.parametrize(
    ("rows", "in_process"), [(1, False), (1600, True)], ids=["thread", "process"]
)
async def test_health_checks_are_answered_while_a_body_is_decoded(
    edge: EdgeDataplane, tmp_path: Path, rows: int, in_process: bool
) -> None:
    entered, gate = tmp_path / "entered", tmp_path / "gate"
    os.mkfifo(entered)
    os.mkfifo(gate)
    limits = Limits(max_rows=rows)
    decoder = Decoder(limits, decode=GatedDecode(str(entered), str(gate)))
    app = make_app(edge, model_name=MODEL, limits=limits, decoder=decoder)
    body = big_body(rows)
    assert (len(body) > 20_000_000) is in_process
    async with TestClient(TestServer(app)) as session:
        infer = asyncio.create_task(session.post(INFER, data=body))
        decoding_pid = int(await asyncio.to_thread(hear, str(entered)))
        assert (decoding_pid != os.getpid()) is in_process
        # The decode is held at the gate: the loop still answers health checks meanwhile.
        for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):
            assert (await session.get(path)).status == 200
        assert not infer.done()
        await asyncio.to_thread(tell, str(gate))
        response = await infer
        assert response.status == 200, await response.text()
        payload = await response.json()
    assert payload["outputs"][0]["shape"] == [rows]
