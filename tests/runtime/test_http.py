"""The OIP v2 HTTP face: health, metadata, inference (JSON and binary tensors), every malformed
request, /metrics. Limits are in test_http_limits.py, real clients in test_http_clients.py."""

from __future__ import annotations

import json
import struct
import time
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
from inferedge.runtime.step_timings import REQUEST, StepTimings
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


def broker_gauge(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("inferedge_broker_connected"))


@pytest.mark.asyncio
async def test_an_edge_is_ready_once_loaded_even_without_its_broker(
    cloud: CloudDataplane, edge_part: Partition
) -> None:
    edge = EdgeDataplane(
        None, threshold=NEVER, offload=direct_offload(cloud), offload_timeout_s=1.0
    )
    connected = {"nats": False}
    app = make_app(edge, model_name=MODEL, broker_connected=lambda: connected["nats"])
    async with TestClient(TestServer(app)) as session:
        assert (await session.get("/v2/health/live")).status == 200
        response = await session.get("/v2/health/ready")
        assert response.status == 503
        assert await response.json() == {"ready": False}
        assert "not loaded" in await error_of(await session.get(f"/v2/models/{MODEL}"), 503)
        body = body_for(np.zeros((1, *SHAPE), np.float32))
        assert "not loaded" in await error_of(await session.post(INFER, json=body), 503)
        edge.swap(edge_part)
        # It can answer (from its exits, degraded, were the cloud unreachable): ready.
        response = await session.get("/v2/health/ready")
        assert response.status == 200
        assert await response.json() == {"ready": True}
        assert (await session.get(f"/v2/models/{MODEL}/ready")).status == 200
        broker = await session.get("/v2/health/broker")
        assert broker.status == 503
        assert await broker.json() == {"connected": False, "degraded": True}
        text = await (await session.get("/metrics")).text()
        assert broker_gauge(text) == "inferedge_broker_connected 0.0"
        connected["nats"] = True
        broker = await session.get("/v2/health/broker")
        assert broker.status == 200
        assert await broker.json() == {"connected": True, "degraded": False}
        text = await (await session.get("/metrics")).text()
        assert broker_gauge(text) == "inferedge_broker_connected 1.0"
        assert (await session.post(INFER, json=body)).status == 200


@pytest.mark.asyncio
async def test_a_cloud_is_ready_only_with_its_broker(cloud: CloudDataplane) -> None:
    connected = {"nats": False}
    app = make_app(cloud, model_name=MODEL, broker_connected=lambda: connected["nats"])
    async with TestClient(TestServer(app)) as session:
        # its work arrives over NATS only: without the broker it cannot answer anything
        assert (await session.get("/v2/health/ready")).status == 503
        assert (await session.get(f"/v2/models/{MODEL}/ready")).status == 503
        broker = await session.get("/v2/health/broker")
        assert await broker.json() == {"connected": False, "degraded": False}
        connected["nats"] = True
        assert (await session.get("/v2/health/ready")).status == 200
        assert (await session.get(f"/v2/models/{MODEL}/ready")).status == 200


@pytest.mark.asyncio
async def test_server_metadata(client: Client) -> None:
    response = await client.get("/v2")
    assert response.status == 200
    meta = await response.json()
    assert meta["name"] == "inferedge"
    assert meta["version"]
    assert "binary_tensor_data" in meta["extensions"]
    # without a broker to watch there is no broker endpoint
    assert (await client.get("/v2/health/broker")).status == 404


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
    versioned = f"/v2/models/{MODEL}/versions/{partition.plan_hash}"
    assert (await (await client.get(versioned)).json())["name"] == MODEL
    assert (await client.get(f"{versioned}/ready")).status == 200
    message = await error_of(await client.get(f"/v2/models/{MODEL}/versions/v9"), 404)
    assert message == f"version: expected {partition.plan_hash!r}, got 'v9'"


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


def binary_body(x: np.ndarray, **parameters: Any) -> tuple[bytes, dict[str, str]]:
    """A request with the binary data extension, as tritonclient and KServe's SDK send it."""
    raw = x.astype("<f4").tobytes()
    header = json.dumps({
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)}}],
        **({"parameters": parameters} if parameters else {}),
    }).encode()  # fmt: skip
    headers = {"Inference-Header-Content-Length": str(len(header)),
               "Content-Type": "application/octet-stream"}  # fmt: skip
    return header + raw, headers


def split_binary(body: bytes, json_length: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The JSON of a response with binary outputs, and each binary output's bytes by name."""
    payload = json.loads(body[:json_length])
    blobs, offset = {}, json_length
    for output in payload["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            blobs[output["name"]] = body[offset : offset + size]
            offset += size
    assert offset == len(body)
    return payload, blobs


@pytest.mark.asyncio
async def test_binary_tensors_in_and_out(
    client: Client, exported: Exported, images: Images
) -> None:
    x = images(3)
    body, headers = binary_body(x, binary_data_output=True)
    response = await client.post(INFER, data=body, headers=headers)
    assert response.status == 200, await response.text()
    raw = await response.read()
    payload, blobs = split_binary(raw, int(response.headers["Inference-Header-Content-Length"]))
    assert all("data" not in o for o in payload["outputs"])
    predictions = struct.unpack("<3q", blobs["prediction"])
    assert list(predictions) == exported.predict(x)
    confidences = np.frombuffer(blobs["confidence"], "<f4")
    assert ((confidences > 0) & (confidences <= 1)).all()
    assert payload["parameters"]["location"] == ["cloud"] * 3
    # binary in, JSON out (no binary_data_output): the same answers
    body, headers = binary_body(x)
    response = await client.post(INFER, data=body, headers=headers)
    assert "Inference-Header-Content-Length" not in response.headers
    outputs = {o["name"]: o["data"] for o in (await response.json())["outputs"]}
    assert outputs["prediction"] == exported.predict(x)
    assert outputs["confidence"] == pytest.approx(confidences.tolist())


@pytest.mark.asyncio
async def test_requested_outputs_choose_what_comes_back_and_how(
    client: Client, images: Images
) -> None:
    body = body_for(images(2), outputs=[
        {"name": "confidence"},
        {"name": "prediction", "parameters": {"binary_data": True}},
    ])  # fmt: skip
    response = await client.post(INFER, json=body)
    assert response.status == 200
    payload, blobs = split_binary(
        await response.read(), int(response.headers["Inference-Header-Content-Length"])
    )
    assert [o["name"] for o in payload["outputs"]] == ["confidence", "prediction"]
    assert len(payload["outputs"][0]["data"]) == 2
    assert len(blobs["prediction"]) == 16


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


def _binary_tensor(**changes: Any) -> dict[str, Any]:
    return _tensor(data=None, parameters={"binary_data_size": 3072}, **changes)


MALFORMED: list[tuple[str, bytes | dict[str, Any] | list[Any], str]] = [
    (
        "not json",
        b"{not json",
        "body: expected a JSON object, got invalid JSON (key must be a string",
    ),
    ("not utf-8", b"\xff\xfe\x00", "body: expected a JSON object, got invalid JSON"),
    ("empty body", b"", "body: expected a JSON object, got invalid JSON (EOF"),
    ("a list", [1, 2], "body: expected a JSON object (an OIP infer request), got a list of 2"),
    ("no inputs", {}, "inputs: expected a value, got none (required)"),
    ("no tensor", {"inputs": []}, "inputs: expected exactly one tensor named 'input', got 0"),
    ("two tensors", {"inputs": [_tensor()["inputs"][0]] * 2}, "inputs: expected exactly one"),
    ("tensor not an object", {"inputs": [1]}, "inputs[0]: expected a JSON object, got 1"),
    ("wrong name", _tensor(name="image"), "inputs[0].name: expected 'input', got 'image'"),
    ("no name", _tensor(name=None), "inputs[0].name: expected a valid string, got None"),
    ("wrong datatype", _tensor(datatype="INT8"), "inputs[0].datatype: expected 'FP32', got 'INT8'"),
    (
        "wrong shape",
        _tensor(shape=[1, 3, 8, 8]),
        "inputs[0].shape: expected [N, 3, 16, 16] with 1 <= N <= 256, got [1, 3, 8, 8]",
    ),
    ("shape not a list", _tensor(shape="1x3x16x16"), "inputs[0].shape: expected a valid list"),
    (
        "boolean in shape",
        _tensor(shape=[True, 3, 16, 16]),
        "inputs[0].shape[0]: expected a valid integer, got True",
    ),
    ("float in shape", _tensor(shape=[1.0, 3, 16, 16]), "inputs[0].shape[0]: expected a valid"),
    ("empty shape", _tensor(shape=[]), "inputs[0].shape: expected [N, 3, 16, 16]"),
    ("no sample", _tensor(shape=[0, *SHAPE], data=[]), "inputs[0].shape: expected [N, 3, 16, 16]"),
    ("too many samples", _tensor(shape=[257, *SHAPE]), "1 <= N <= 256, got [257, 3, 16, 16]"),
    (
        "data not a list",
        _tensor(data="0,0,0"),
        "inputs[0].data: expected a valid list, got '0,0,0'",
    ),
    ("no data", _tensor(data=None), "inputs[0].data: expected a list of numbers, or"),
    (
        "short data",
        _tensor(data=[0.0] * 5),
        "data: expected 768 numbers for shape [1, 3, 16, 16], flat or nested as it, got 5",
    ),
    (
        "strings in data",
        _tensor(data=["0.5"] * 768),
        "inputs[0].data: expected numbers only, got str",
    ),
    ("null in data", _tensor(data=[None] + [0.0] * 767), "inputs[0].data: expected numbers only"),
    ("booleans in data", _tensor(data=[True] * 768), "expected numbers only, got booleans"),
    ("ragged data", _tensor(data=[[0.0, 1.0], [2.0]]), "inputs[0].data: expected numbers, flat or"),
    ("nested unlike the shape", _tensor(data=[[0.0] * 384] * 2), "got 768 in shape [2, 384]"),
    ("huge integer", _tensor(data=[10**40] + [0] * 767), "inputs[0].data: expected numbers only"),
    (
        "float32 overflow",
        _tensor(data=[1e300] + [0.0] * 767),
        "inputs[0].data: expected finite FP32 numbers",
    ),
    ("id not a string", {**_tensor(), "id": 7}, "id: expected a valid string, got 7"),
    ("unknown field", {**_tensor(), "input": []}, "input: expected no such field"),
    (
        "shared memory",
        _tensor(parameters={"shared_memory_region": "r"}),
        "inputs[0].parameters.shared_memory_region: expected no such field",
    ),
    (
        "negative binary size",
        _tensor(parameters={"binary_data_size": -1}),
        "inputs[0].parameters.binary_data_size: expected greater than or equal to 0, got -1",
    ),
    (
        "binary without its header",
        _binary_tensor(),
        "Inference-Header-Content-Length: expected the header when inputs[0].parameters.",
    ),
    (
        "binary and data",
        _tensor(parameters={"binary_data_size": 3072}),
        "inputs[0].data: expected no data when inputs[0].parameters.binary_data_size is given",
    ),
    (
        "unknown output",
        {**_tensor(), "outputs": [{"name": "logits"}]},
        "outputs[0].name: expected one of 'prediction', 'confidence', got 'logits'",
    ),
    (
        "output parameter",
        {**_tensor(), "outputs": [{"name": "prediction", "parameters": {"classification": 3}}]},
        "outputs[0].parameters.classification: expected no such field",
    ),
    (
        "binary_data_output not a boolean",
        {**_tensor(), "parameters": {"binary_data_output": 1}},
        "parameters.binary_data_output: expected a valid boolean, got 1",
    ),
    (
        "parameter not a scalar",
        {**_tensor(), "parameters": {"priority": [1]}},
        "parameters.priority: expected a string, number or boolean, got a list of 1",
    ),
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
        message = await error_of(response, 400)
        assert message.startswith("inputs[0].data: expected finite FP32 numbers, got NaN")


def _binary(
    header: bytes, raw: bytes, length: int | str | None = None
) -> tuple[bytes, dict[str, str]]:
    size = len(header) if length is None else length
    return header + raw, {"Inference-Header-Content-Length": str(size)}


_HEADER = json.dumps(_binary_tensor()).encode()
_ZEROS = bytes(3072)
MALFORMED_BINARY: list[tuple[str, tuple[bytes, dict[str, str]], str]] = [
    (
        "header not a number",
        _binary(_HEADER, _ZEROS, "x"),
        "Inference-Header-Content-Length: expected the JSON's byte length, 1 to the body's",
    ),
    (
        "header past the body",
        _binary(_HEADER, b"", 10**6),
        "Inference-Header-Content-Length: expected the JSON's byte length",
    ),
    (
        "header cuts the JSON",
        _binary(_HEADER, _ZEROS, 10),
        "body: expected a JSON object, got invalid",
    ),
    (
        "short tensor bytes",
        _binary(_HEADER, _ZEROS[:-4]),
        "body: expected 3072 bytes of tensor data after the JSON, got 3068",
    ),
    ("long tensor bytes", _binary(_HEADER, _ZEROS + b"\0"), "after the JSON, got 3073"),
    (
        "size unlike the shape",
        _binary(
            json.dumps(_tensor(data=None, parameters={"binary_data_size": 4})).encode(), b"0000"
        ),
        "binary_data_size: expected 3072 (shape [1, 3, 16, 16] of FP32), got 4",
    ),
    (
        "bytes but no binary input",
        _binary(json.dumps(_tensor()).encode(), b"00"),
        "body: expected no bytes after the JSON when no input has parameters.binary_data_size",
    ),
    (
        "NaN in binary",
        _binary(_HEADER, np.full(768, np.nan, "<f4").tobytes()),
        "inputs[0].data: expected finite FP32 numbers",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("case", "request_", "fragment"), MALFORMED_BINARY,
                         ids=[m[0] for m in MALFORMED_BINARY])  # fmt: skip
async def test_malformed_binary_requests_get_a_400_naming_the_field(
    client: Client, case: str, request_: tuple[bytes, dict[str, str]], fragment: str
) -> None:
    body, headers = request_
    response = await client.post(INFER, data=body, headers=headers)
    assert fragment in await error_of(response, 400)


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
    expected = "model: expected 'digits', got 'resnet'"
    for path in ("/v2/models/resnet", "/v2/models/resnet/ready"):
        assert await error_of(await client.get(path), 404) == expected
    response = await client.post("/v2/models/resnet/infer", json=_tensor())
    assert await error_of(response, 404) == expected
    assert "/v2/nothing" in await error_of(await client.get("/v2/nothing"), 404)
    assert "Method Not Allowed" in await error_of(await client.get(INFER), 405)


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


@pytest.mark.asyncio
async def test_a_single_row_request_records_its_time_outside_the_model_and_the_link(
    client: Client, edge: EdgeDataplane, images: Images
) -> None:
    assert edge.partition is not None
    edge.partition.timings = timings = StepTimings()
    response = await client.post(INFER, json=body_for(images(2)))  # two rows: not recorded
    assert response.status == 200
    assert REQUEST not in timings.snapshot()
    started = time.perf_counter()
    response = await client.post(INFER, json=body_for(images(1)))
    payload = await response.json()
    round_trip_ms = (time.perf_counter() - started) * 1000
    served = payload["parameters"]["timings_ms"][0]
    recorded = timings.snapshot()[REQUEST]
    inside = served["edge_compute_ms"] + served["transfer_ms"] + served["cloud_ms"]
    # what the handler spent besides the model calls and the offload fits in the round trip
    assert recorded > 0.0
    assert recorded + inside <= round_trip_ms
