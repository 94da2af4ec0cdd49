"""Real OIP v2 clients against a served edge, with their defaults: Triton's `tritonclient[http]`
(binary tensors in and out unless told otherwise) and KServe's SDK (`InferenceRESTClient`, v2).

Both talk to a real socket; tritonclient is synchronous (gevent), so it runs in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import tritonclient.http as triton
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.rest import v2_datamodels as kserve_models

from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.http import make_app
from inferedge.runtime.partition import Partition
from inferedge.runtime.policy import BatchPolicy
from tests.runtime.conftest import SHAPE, Exported
from tests.runtime.helpers import direct_offload

MODEL = "digits"
NEVER = 2.0
Images = Callable[..., np.ndarray]
Client = TestClient[web.Request, web.Application]


@pytest_asyncio.fixture
async def served(edge_part: Partition, cloud_part: Partition) -> AsyncIterator[Client]:
    """A served edge (offloading straight to a cloud dataplane) on a real local port."""
    cloud = CloudDataplane(cloud_part, batch_policy=BatchPolicy(8, 2.0), threshold=NEVER)
    edge = EdgeDataplane(
        edge_part, threshold=NEVER, offload=direct_offload(cloud), offload_timeout_s=10.0
    )
    app = make_app(edge, model_name=MODEL, broker_connected=lambda: False)
    async with TestClient(TestServer(app)) as session:
        yield session
    await edge.aclose()
    await cloud.aclose()


def _triton_session(url: str, x: np.ndarray) -> dict[str, Any]:
    """Everything a tritonclient user does first, with the client's defaults."""
    client = triton.InferenceServerClient(url=url)
    try:
        seen: dict[str, Any] = {
            "server": client.get_server_metadata(),
            "live": client.is_server_live(),
            "ready": client.is_server_ready(),
            "model_ready": client.is_model_ready(MODEL),
            "model": client.get_model_metadata(MODEL),
        }
        tensor = triton.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)  # binary_data=True: the default
        result = client.infer(MODEL, [tensor])  # no outputs named: all of them, binary
        seen["binary"] = (result.as_numpy("prediction"), result.as_numpy("confidence"))
        seen["binary_response"] = result.get_response()
        tensor = triton.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=False)
        outputs = [triton.InferRequestedOutput(n, binary_data=False)
                   for n in ("prediction", "confidence")]  # fmt: skip
        result = client.infer(MODEL, [tensor], outputs=outputs, request_id="json-1")
        seen["json"] = (result.as_numpy("prediction"), result.as_numpy("confidence"))
        seen["json_response"] = result.get_response()
        try:
            client.get_model_metadata("resnet")
        except triton.InferenceServerException as exc:
            seen["unknown"] = (exc.status(), exc.message())
        return seen
    finally:
        client.close()


@pytest.mark.asyncio
async def test_tritonclient_with_its_defaults(
    served: Client, exported: Exported, images: Images, edge_part: Partition
) -> None:
    x = images(3)
    url = f"{served.server.host}:{served.server.port}"
    seen = await asyncio.to_thread(_triton_session, url, x)
    assert seen["server"]["name"] == "inferedge"
    assert "binary_tensor_data" in seen["server"]["extensions"]
    # the broker is down (broker_connected is False): the edge still answers, so it is ready
    assert seen["live"]
    assert seen["ready"]
    assert seen["model_ready"]
    assert seen["model"]["versions"] == [edge_part.plan_hash]
    assert seen["model"]["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, *SHAPE]}]
    expected = exported.predict(x)
    for way in ("binary", "json"):
        predictions, confidences = seen[way]
        assert predictions.dtype == np.int64
        assert predictions.tolist() == expected
        assert confidences.dtype == np.float32
        assert ((confidences > 0) & (confidences <= 1)).all()
    assert seen["binary"][1].tolist() == pytest.approx(seen["json"][1].tolist())
    assert seen["binary_response"]["parameters"]["location"] == ["cloud"] * 3
    assert seen["json_response"]["id"] == "json-1"
    status, message = seen["unknown"]
    assert status == "404"
    assert message == "model: expected 'digits', got 'resnet'"


@pytest.mark.asyncio
async def test_kserve_sdk_with_its_defaults(
    served: Client, exported: Exported, images: Images, edge_part: Partition
) -> None:
    base = str(served.make_url(""))
    x = images(2)
    client = InferenceRESTClient(RESTConfig(protocol="v2"))
    try:
        assert await client.is_server_live(base)
        assert await client.is_server_ready(base)
        assert await client.is_model_ready(base, MODEL)
        tensor = InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)  # binary_data=True: the default
        request = InferRequest(model_name=MODEL, infer_inputs=[tensor], request_id="k-1")
        response = await client.infer(base, request, model_name=MODEL)
        json_tensor = InferInput("input", list(x.shape), "FP32")
        json_tensor.set_data_from_numpy(x, binary_data=False)
        json_request = InferRequest(model_name=MODEL, infer_inputs=[json_tensor])
        json_response = await client.infer(base, json_request, model_name=MODEL)
    finally:
        await client.close()
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    assert outputs["prediction"].tolist() == exported.predict(x)
    assert response.id == "k-1"
    json_outputs = {o.name: o.as_numpy() for o in json_response.outputs}
    assert json_outputs["prediction"].tolist() == exported.predict(x)
    assert json_outputs["confidence"].tolist() == pytest.approx(outputs["confidence"].tolist())
    # KServe's own declaration of the protocol accepts what this server answers.
    kserve_models.ServerMetadataResponse.model_validate(await (await served.get("/v2")).json())
    meta = await (await served.get(f"/v2/models/{MODEL}")).json()
    assert kserve_models.ModelMetadataResponse.model_validate(meta).versions == [
        edge_part.plan_hash
    ]
    ready = await (await served.get(f"/v2/models/{MODEL}/ready")).json()
    assert kserve_models.ModelReadyResponse.model_validate(ready).ready
    live = await (await served.get("/v2/health/live")).json()
    assert kserve_models.ServerLiveResponse.model_validate(live).live
