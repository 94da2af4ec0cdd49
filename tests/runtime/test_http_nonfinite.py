"""Inputs that overflow inside the model: the answer is degraded (`invalid_answer`), the
response is valid JSON, and no NaN or infinity is ever returned as a number."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.http import make_app
from inferedge.runtime.messages import CloudAnswer, OffloadContext
from inferedge.runtime.partition import Partition, RowResult
from inferedge.runtime.policy import BatchPolicy
from tests.runtime.conftest import SHAPE, Exported
from tests.runtime.helpers import direct_offload

MODEL = "digits"
INFER = f"/v2/models/{MODEL}/infer"
NEVER = 2.0
Client = TestClient[web.Request, web.Application]


@pytest_asyncio.fixture
async def cloud(cloud_part: Partition) -> AsyncIterator[CloudDataplane]:
    plane = CloudDataplane(cloud_part, batch_policy=BatchPolicy(8, 2.0), threshold=NEVER)
    yield plane
    await plane.aclose()


def body_for(x: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}]}  # fmt: skip


def strict_json(text: str) -> Any:
    def refuse(literal: str) -> None:
        raise AssertionError(f"{literal} in a response")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.asyncio
async def test_inputs_at_float32s_limits_answer_degraded_in_valid_json(
    edge_part: Partition, cloud: CloudDataplane
) -> None:
    edge = EdgeDataplane(
        edge_part, threshold=NEVER, offload=direct_offload(cloud), offload_timeout_s=10.0
    )
    x = np.full((2, *SHAPE), 3e38, np.float32)
    x[1] = -3e38
    async with TestClient(TestServer(make_app(edge, model_name=MODEL))) as session:
        response = await session.post(INFER, json=body_for(x))
        assert response.status == 200
        payload = strict_json(await response.text())
        metrics = await (await session.get("/metrics")).text()
    await edge.aclose()
    outputs = {o["name"]: o["data"] for o in payload["outputs"]}
    assert all(math.isfinite(c) for c in outputs["confidence"])
    params = payload["parameters"]
    assert params["degraded"] == [True, True]
    assert params["reason"] == ["invalid_answer", "invalid_answer"]
    assert 'inferedge_degraded_total{reason="invalid_answer"} 2.0' in metrics


def _cloud_answering(rows: list[RowResult], plan_hash: str) -> Any:
    async def offload(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        return CloudAnswer(plan_hash=plan_hash, rows=tuple(rows), queue_ms=0.0, compute_ms=1.0,
                           batch_size=len(rows))  # fmt: skip

    return offload


@pytest.mark.asyncio
async def test_a_non_finite_cloud_row_falls_back_alone(edge_part: Partition, images: Any) -> None:
    rows = [RowResult(3, 0.9, 4, 12), RowResult(0, math.nan, 4, 12)]
    edge = EdgeDataplane(
        edge_part, threshold=NEVER, offload=_cloud_answering(rows, edge_part.plan_hash),
        offload_timeout_s=1.0,
    )  # fmt: skip
    answers = await edge.infer(images(2))
    await edge.aclose()
    assert (answers[0].location, answers[0].prediction, answers[0].degraded) == ("cloud", 3, False)
    assert answers[1].location == "edge"  # the most confident finite edge exit
    assert answers[1].degraded
    assert answers[1].reason == "invalid_answer"
    assert math.isfinite(answers[1].confidence)
    assert answers[1].exit_index < 2


@pytest.mark.asyncio
async def test_a_cloud_reply_that_does_not_parse_is_an_invalid_answer(
    exported: Exported, images: Any
) -> None:
    async def null_confidence(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        # what the edge's NATS offload raises when the cloud's NaN travelled as null
        return CloudAnswer.model_validate_json(
            '{"plan_hash": "p", "rows": [{"prediction": 0, "confidence": null, '
            '"exit_index": 4, "cut_index": 12}], "queue_ms": 0, "compute_ms": 0, "batch_size": 1}'
        )

    with pytest.raises(ValidationError):
        await null_confidence(images(1), None)  # type: ignore[arg-type]
    edge = EdgeDataplane(
        exported.load("main", "edge"), threshold=NEVER, offload=null_confidence,
        offload_timeout_s=1.0,
    )  # fmt: skip
    answers = await edge.infer(images(1))
    await edge.aclose()
    assert answers[0].reason == "invalid_answer"
    assert answers[0].degraded


@pytest.mark.asyncio
async def test_no_finite_classifier_answers_minus_one(exported: Exported) -> None:
    partition = exported.load("no-edge-exit", "edge")
    rows = [RowResult(0, math.nan, 1, 12)]
    edge = EdgeDataplane(
        partition, threshold=NEVER, offload=_cloud_answering(rows, partition.plan_hash),
        offload_timeout_s=1.0,
    )  # fmt: skip
    answers = await edge.infer(np.zeros((1, *SHAPE), np.float32))
    await edge.aclose()
    assert (answers[0].prediction, answers[0].confidence) == (-1, 0.0)
    assert answers[0].reason == "invalid_answer"
