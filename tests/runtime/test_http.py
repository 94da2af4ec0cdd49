"""The OIP v2 HTTP face: health, metadata, inference, every malformed request, /metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.http import make_app
from inferedge.runtime.messages import CloudAnswer, OffloadContext
from inferedge.runtime.partition import Partition
from inferedge.runtime.policy import BatchPolicy
from tests.runtime.conftest import SHAPE, Exported
from tests.runtime.helpers import direct_offload

Images = Callable[..., np.ndarray]
MODEL = "digits"
INFER = f"/v2/models/{MODEL}/infer"
NEVER = 2.0
Client = TestClient[web.Request, web.Application]


def body_for(x: np.ndarray, **extra: Any) -> dict[str, Any]:
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32",
              "data": x.ravel().tolist()}  # fmt: skip
    return {"inputs": [tensor], **extra}


@pytest_asyncio.fixture
async def cloud(cloud_part: Partition) -> AsyncIterator[CloudDataplane]:
    plane = CloudDataplane(cloud_part, batch_policy=BatchPolicy(8, 2.0), threshold=NEVER)
    yield plane
    await plane.aclose()


@pytest_asyncio.fixture
async def edge(edge_part: Partition, cloud: CloudDataplane) -> AsyncIterator[EdgeDataplane]:
    plane = EdgeDataplane(
        edge_part, threshold=NEVER, offload=direct_offload(cloud), offload_timeout_s=10.0
    )
    yield plane
    await plane.aclose()


@pytest_asyncio.fixture
async def client(edge: EdgeDataplane) -> AsyncIterator[Client]:
    async with TestClient(TestServer(make_app(edge, model_name=MODEL))) as session:
        yield session


async def error_of(response: Any, status: int) -> str:
    assert response.status == status, await response.text()
    payload = await response.json()
    assert set(payload) == {"error"}
    message: str = payload["error"]
    assert message
    assert "\n" not in message
    return message


@pytest.mark.asyncio
async def test_health_and_readiness_follow_the_load(cloud: CloudDataplane,
                                                    edge_part: Partition) -> None:  # fmt: skip
    edge = EdgeDataplane(
        None, threshold=NEVER, offload=direct_offload(cloud), offload_timeout_s=1.0
    )
    connected = {"nats": False}
    app = make_app(edge, model_name=MODEL, ready=lambda: connected["nats"])
    async with TestClient(TestServer(app)) as session:
        assert (await session.get("/v2/health/live")).status == 200
        response = await session.get("/v2/health/ready")
        assert response.status == 503
        assert await response.json() == {"ready": False}
        assert "not loaded" in await error_of(await session.get(f"/v2/models/{MODEL}"), 503)
        body = body_for(np.zeros((1, *SHAPE), np.float32))
        assert "not loaded" in await error_of(await session.post(INFER, json=body), 503)
        edge.swap(edge_part)
        assert (await session.get("/v2/health/ready")).status == 503  # the entrypoint is not
        connected["nats"] = True
        response = await session.get("/v2/health/ready")
        assert response.status == 200
        assert await response.json() == {"ready": True}
        assert (await session.get(f"/v2/models/{MODEL}/ready")).status == 200
        assert (await session.post(INFER, json=body)).status == 200


@pytest.mark.asyncio
async def test_model_metadata(client: Client, edge: EdgeDataplane) -> None:
    response = await client.get(f"/v2/models/{MODEL}")
    assert response.status == 200
    meta = await response.json()
    partition = edge.partition
    assert partition is not None
    assert meta["name"] == MODEL
    assert meta["versions"] == [partition.plan_hash]
    assert meta["platform"] == "torch/torch.export"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, *SHAPE]}]
    assert [o["name"] for o in meta["outputs"]] == ["prediction", "confidence"]
    params = meta["parameters"]
    assert params["plan_hash"] == partition.plan_hash
    assert params["threshold"] == NEVER
    assert params["location"] == "edge"
    assert [e["exit_index"] for e in params["exits"]] == [0, 1, 2, 3]
    edge.set_threshold(0.25)
    assert (await (await client.get(f"/v2/models/{MODEL}")).json())["parameters"][
        "threshold"
    ] == 0.25


@pytest.mark.asyncio
async def test_infer_answers_in_oip_form(
    client: Client, exported: Exported, edge_part: Partition, images: Images
) -> None:
    x = images(3)
    response = await client.post(INFER, json=body_for(x, id="req-1"))
    assert response.status == 200
    payload = await response.json()
    assert payload["id"] == "req-1"
    assert payload["model_name"] == MODEL
    outputs = {o["name"]: o for o in payload["outputs"]}
    assert outputs["prediction"]["data"] == exported.predict(x)
    assert outputs["prediction"]["shape"] == [3]
    assert outputs["prediction"]["datatype"] == "INT64"
    assert all(0.0 < c <= 1.0 for c in outputs["confidence"]["data"])
    params = payload["parameters"]
    assert params["location"] == ["cloud"] * 3
    assert params["exit_index"] == [4] * 3
    assert params["degraded"] == [False] * 3
    assert params["reason"] == [None] * 3
    assert all(set(t) == {"edge_ms", "edge_compute_ms", "transfer_ms", "cloud_ms", "total_ms"}
               for t in params["timings_ms"])  # fmt: skip
    assert payload["model_version"] == edge_part.plan_hash


@pytest.mark.asyncio
async def test_nested_data_is_accepted(client: Client, images: Images) -> None:
    x = images(2)
    body = body_for(x)
    body["inputs"][0]["data"] = x.tolist()
    response = await client.post(INFER, json=body)
    assert response.status == 200


def _tensor(**changes: Any) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": "input", "shape": [1, *SHAPE], "datatype": "FP32",
                              "data": [0.0] * 768}  # fmt: skip
    tensor.update(changes)
    return {"inputs": [tensor]}


MALFORMED: list[tuple[str, bytes | dict[str, Any] | list[Any], str]] = [
    ("not json", b"{not json", "the request body is not valid JSON"),
    ("not utf-8", b"\xff\xfe\x00", "the request body is not valid JSON"),
    ("empty body", b"", "the request body is not valid JSON"),
    ("a list", [1, 2], "the request body must be a JSON object"),
    ("no inputs", {}, "inputs must be a list of exactly one tensor"),
    ("no tensor", {"inputs": []}, "inputs must be a list of exactly one tensor"),
    ("two tensors", {"inputs": [_tensor()["inputs"][0]] * 2}, "inputs must be a list"),
    ("tensor not an object", {"inputs": [1]}, "inputs[0] must be an object"),
    ("wrong name", _tensor(name="image"), "inputs[0].name must be 'input', got 'image'"),
    ("no name", _tensor(name=None), "inputs[0].name must be 'input', got None"),
    ("wrong datatype", _tensor(datatype="INT8"), "inputs[0].datatype must be 'FP32'"),
    ("wrong shape", _tensor(shape=[1, 3, 8, 8]), "inputs[0].shape must be [N, 3, 16, 16]"),
    ("shape not a list", _tensor(shape="1x3x16x16"), "inputs[0].shape must be"),
    ("boolean in shape", _tensor(shape=[True, 3, 16, 16]), "inputs[0].shape must be"),
    ("float in shape", _tensor(shape=[1.0, 3, 16, 16]), "inputs[0].shape must be"),
    ("empty shape", _tensor(shape=[]), "inputs[0].shape must be"),
    ("no sample", _tensor(shape=[0, *SHAPE], data=[]), "inputs[0].shape must be"),
    ("too many samples", _tensor(shape=[257, *SHAPE]), "1 <= N <= 256"),
    ("data not a list", _tensor(data="0,0,0"), "inputs[0].data must be a list of numbers"),
    ("short data", _tensor(data=[0.0] * 5), "inputs[0].data has 5 values, shape [1, 3, 16, 16]"),
    ("strings in data", _tensor(data=["0.5"] * 768), "inputs[0].data must hold numbers only"),
    ("null in data", _tensor(data=[None] + [0.0] * 767), "inputs[0].data must hold numbers"),
    ("booleans in data", _tensor(data=[True] * 768), "inputs[0].data must hold numbers only"),
    ("ragged data", _tensor(data=[[0.0, 1.0], [2.0]]), "inputs[0].data must be a list"),
    ("huge integer", _tensor(data=[10**40] + [0] * 767), "inputs[0].data must hold numbers"),
    ("float32 overflow", _tensor(data=[1e300] + [0.0] * 767), "finite float32 numbers"),
    ("id not a string", {**_tensor(), "id": 7}, "id must be a string, got 7"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("case", "body", "fragment"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_requests_get_a_400_naming_the_field(
    client: Client, case: str, body: bytes | dict[str, Any] | list[Any], fragment: str
) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await client.post(INFER, data=data, headers={"Content-Type": "application/json"})
    assert fragment in await error_of(response, 400)


@pytest.mark.asyncio
async def test_nan_and_infinity_are_refused(client: Client) -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        text = json.dumps(_tensor()).replace("[0.0, 0.0", f"[{literal}, 0.0", 1)
        response = await client.post(INFER, data=text)
        assert "no NaN or infinity" in await error_of(response, 400)


@pytest.mark.asyncio
async def test_the_server_survives_every_malformed_request(client: Client,
                                                           images: Images) -> None:  # fmt: skip
    for _, body, _ in MALFORMED:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        assert (await client.post(INFER, data=data)).status == 400
    assert (await client.post(INFER, json=body_for(images(1)))).status == 200
    assert (await client.get("/v2/health/live")).status == 200


@pytest.mark.asyncio
async def test_unknown_models_paths_and_methods(client: Client) -> None:
    for path in ("/v2/models/resnet", "/v2/models/resnet/ready"):
        assert "unknown model 'resnet'" in await error_of(await client.get(path), 404)
    response = await client.post("/v2/models/resnet/infer", json=_tensor())
    assert "this server serves 'digits'" in await error_of(response, 404)
    assert "/v2/nothing" in await error_of(await client.get("/v2/nothing"), 404)
    assert "Method Not Allowed" in await error_of(await client.get(INFER), 405)


@pytest.mark.asyncio
async def test_a_body_over_the_limit_is_refused(edge: EdgeDataplane) -> None:
    app = make_app(edge, model_name=MODEL, max_body_bytes=1024)
    async with TestClient(TestServer(app)) as session:
        response = await session.post(INFER, json=_tensor())
        assert "Request Entity Too Large" in await error_of(response, 413)


@pytest.mark.asyncio
async def test_no_fallback_answers_503(exported: Exported, images: Images) -> None:
    async def unreachable(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        raise ConnectionRefusedError("no route to the cloud")

    edge = EdgeDataplane(
        exported.load("no-edge-exit", "edge"), threshold=NEVER, offload=unreachable,
        offload_timeout_s=1.0,
    )  # fmt: skip
    async with TestClient(TestServer(make_app(edge, model_name=MODEL))) as session:
        response = await session.post(INFER, json=body_for(images(1)))
        message = await error_of(response, 503)
    assert "no exit to answer instead" in message


@pytest.mark.asyncio
async def test_metrics_endpoint(client: Client, edge: EdgeDataplane, images: Images) -> None:
    assert (await client.post(INFER, json=body_for(images(2)))).status == 200
    edge.set_threshold(0.0)
    assert (await client.post(INFER, json=body_for(images(2)))).status == 200
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    for line in (
        'inferedge_requests_total{exit="4",location="cloud"} 2.0',
        'inferedge_requests_total{exit="0",location="edge"} 2.0',
        "inferedge_offloads_total 2.0",
        "inferedge_offload_ratio 0.5",
        "inferedge_activation_bytes_count 1.0",
        'inferedge_latency_seconds_count{location="edge"} 2.0',
        'inferedge_latency_seconds_count{location="cloud"} 2.0',
    ):
        assert line in text, line
    for name in ("inferedge_degraded_total", "inferedge_plan_mismatch_total",
                 "inferedge_batch_size", "inferedge_failed_total"):  # fmt: skip
        assert f"# TYPE {name.removesuffix('_total')}" in text


@pytest.mark.asyncio
async def test_cloud_app_serves_health_metadata_and_metrics(cloud: CloudDataplane) -> None:
    async with TestClient(TestServer(make_app(cloud, model_name=MODEL))) as session:
        assert (await session.get("/v2/health/ready")).status == 200
        meta = await (await session.get(f"/v2/models/{MODEL}")).json()
        partition = cloud.partition
        assert partition is not None
        assert meta["inputs"][0]["name"] == "activation"
        assert meta["inputs"][0]["shape"] == [-1, *partition.input_shape]
        assert meta["parameters"]["max_batch_size"] == 8
        assert meta["parameters"]["location"] == "cloud"
        assert (await session.get("/metrics")).status == 200
        # inference enters the cloud as offloads from the edge, not over HTTP
        assert (await session.post(INFER, json=_tensor())).status in (404, 405)
