"""A thin HTTP face for a dataplane: Open Inference Protocol v2 paths and Prometheus /metrics.

Everything here is decoding, validating and encoding; decisions live in the dataplane. Every
error answers with the OIP error body `{"error": "<one line>"}`: 400 names the offending field,
404 an unknown model or path, 503 a server that cannot answer yet (or a cloud that failed with
no edge exit to fall back on). A malformed request never reaches the dataplane.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Final

import numpy as np
from aiohttp import web

from inferedge.core.errors import InferedgeError, one_line
from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.errors import NotReady, OffloadFailed
from inferedge.runtime.messages import Answer
from inferedge.runtime.metrics import CONTENT_TYPE
from inferedge.runtime.partition import DTYPE, Partition, PartitionError

log = logging.getLogger(__name__)

INPUT_NAME: Final = "input"
DATATYPE: Final = "FP32"
MAX_BODY_BYTES: Final = 64 << 20
MAX_SAMPLES: Final = 256

Dataplane = EdgeDataplane | CloudDataplane
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(InferedgeError):
    """An inference request that does not follow the protocol; the message names the field."""


class _Refused(Exception):
    """Answer the request with `status` and an OIP error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _oip_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure, aiohttp's own included (404, 405, 413), with an OIP error body."""
    try:
        return await handler(request)
    except _Refused as exc:
        return _error(exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, f"{request.method} {request.path}: {exc.reason}")
    except Exception as exc:  # the server answers 500 and lives on
        log.exception("%s %s failed", request.method, request.path)
        return _error(500, one_line(exc))


def parse_infer_request(
    body: object, input_shape: tuple[int, ...], max_samples: int = MAX_SAMPLES
) -> tuple[np.ndarray, str | None]:
    """The input batch (float32, [N, *input_shape]) and request id of an OIP v2 infer body.

    Raises BadRequest with a one-line message naming the field that is wrong.
    """
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"id must be a string, got {request_id!r}")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise BadRequest(f"inputs must be a list of exactly one tensor named {INPUT_NAME!r}")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise BadRequest("inputs[0] must be an object with name, shape, datatype and data")
    if tensor.get("name") != INPUT_NAME:
        raise BadRequest(f"inputs[0].name must be {INPUT_NAME!r}, got {tensor.get('name')!r}")
    if tensor.get("datatype") != DATATYPE:
        raise BadRequest(f"inputs[0].datatype must be {DATATYPE!r}, got {tensor.get('datatype')!r}")
    shape = _shape(tensor.get("shape"), input_shape, max_samples)
    return _data(tensor.get("data"), shape), request_id


def _shape(value: object, input_shape: tuple[int, ...], max_samples: int) -> list[int]:
    expected = f"[N, {', '.join(map(str, input_shape))}] with 1 <= N <= {max_samples}"
    if (
        not isinstance(value, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in value)
        or tuple(value[1:]) != input_shape
        or not 1 <= value[0] <= max_samples
    ):
        raise BadRequest(f"inputs[0].shape must be {expected}, got {value!r}")
    return value


def _data(value: object, shape: list[int]) -> np.ndarray:
    if not isinstance(value, list):
        raise BadRequest("inputs[0].data must be a list of numbers (flat, row-major)")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged nesting
        raise BadRequest("inputs[0].data must be a list of numbers (flat, row-major)") from None
    # Strings, booleans and nulls would convert silently with a float dtype: check the kind.
    if array.dtype.kind not in "iuf":
        raise BadRequest("inputs[0].data must hold numbers only")
    needed = math.prod(shape)
    if array.size != needed:
        raise BadRequest(f"inputs[0].data has {array.size} values, shape {shape} needs {needed}")
    with np.errstate(over="ignore"):  # values beyond float32 become infinite, refused below
        batch = array.reshape(shape).astype(DTYPE)
    if not np.isfinite(batch).all():
        raise BadRequest("inputs[0].data must hold finite float32 numbers (no NaN or infinity)")
    return batch


def infer_response(
    model_name: str, answers: list[Answer], request_id: str | None
) -> dict[str, Any]:
    """The OIP v2 response for `answers`: prediction and confidence tensors, and per-sample
    exit, location, degradation and timings in `parameters` (one list entry per sample)."""
    n = len(answers)
    response: dict[str, Any] = {
        "model_name": model_name,
        "model_version": answers[0].plan_hash if answers else "",
        "outputs": [
            {"name": "prediction", "shape": [n], "datatype": "INT64",
             "data": [a.prediction for a in answers]},
            {"name": "confidence", "shape": [n], "datatype": "FP32",
             "data": [a.confidence for a in answers]},
        ],
        "parameters": {
            "exit_index": [a.exit_index for a in answers],
            "cut_index": [a.cut_index for a in answers],
            "location": [a.location for a in answers],
            "degraded": [a.degraded for a in answers],
            "reason": [a.reason for a in answers],
            "timings_ms": [a.timings for a in answers],
        },
    }  # fmt: skip
    if request_id is not None:
        response["id"] = request_id
    return response


def model_metadata(model_name: str, dataplane: Dataplane, partition: Partition) -> dict[str, Any]:
    """OIP v2 model metadata, with the plan and the live threshold in `parameters`."""
    plan = partition.manifest.plan
    parameters: dict[str, Any] = {
        "location": partition.part,
        "plan_hash": partition.plan_hash,
        "threshold": dataplane.threshold,
        "confidence": partition.kind,
        "split": plan.split,
        "final_cut": plan.final_cut,
        "exits": [
            {"exit_index": partition.exit_index_of(e.cut_index), "part": e.part,
             "cut_index": e.cut_index, "name": e.name}
            for e in plan.exits
        ],
    }  # fmt: skip
    if isinstance(dataplane, CloudDataplane):
        policy = dataplane.batch_policy
        parameters["max_batch_size"] = policy.max_batch_size
        parameters["max_wait_ms"] = policy.max_wait_ms
    name = INPUT_NAME if partition.part == "edge" else "activation"
    return {
        "name": model_name,
        "versions": [partition.plan_hash],
        "platform": f"{partition.manifest.framework}/{partition.manifest.format}",
        "inputs": [{"name": name, "datatype": DATATYPE, "shape": [-1, *partition.input_shape]}],
        "outputs": [
            {"name": "prediction", "datatype": "INT64", "shape": [-1]},
            {"name": "confidence", "datatype": "FP32", "shape": [-1]},
        ],
        "parameters": parameters,
    }


def make_app(
    dataplane: Dataplane,
    *,
    model_name: str,
    ready: Callable[[], bool] | None = None,
    max_samples: int = MAX_SAMPLES,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> web.Application:
    """The aiohttp application serving `dataplane` as the OIP model `model_name`.

    `ready` adds the entrypoint's own readiness (e.g. its broker connection) to the
    dataplane's; /v2/health/ready answers 200 only when both hold. Inference
    (`POST /v2/models/{name}/infer`) is served by an edge dataplane only: the cloud takes its
    work as offloads from the edge.
    """
    app = web.Application(client_max_size=max_body_bytes, middlewares=[_oip_errors])

    def is_ready() -> bool:
        return dataplane.ready and (ready is None or ready())

    def served(request: web.Request) -> Partition:
        name = request.match_info["name"]
        if name != model_name:
            raise _Refused(404, f"unknown model {name!r}; this server serves {model_name!r}")
        partition = dataplane.partition
        if partition is None:
            raise _Refused(503, f"model {model_name!r} is not loaded yet")
        return partition

    async def live(_: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def health_ready(_: web.Request) -> web.Response:
        ok = is_ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    async def metadata(request: web.Request) -> web.Response:
        return web.json_response(model_metadata(model_name, dataplane, served(request)))

    async def model_ready(request: web.Request) -> web.Response:
        served(request)
        ok = is_ready()
        return web.json_response({"name": model_name, "ready": ok}, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=dataplane.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE}
        )

    app.router.add_get("/v2/health/live", live)
    app.router.add_get("/v2/health/ready", health_ready)
    app.router.add_get("/v2/models/{name}", metadata)
    app.router.add_get("/v2/models/{name}/ready", model_ready)
    app.router.add_get("/metrics", metrics)
    if isinstance(dataplane, EdgeDataplane):
        edge = dataplane

        async def infer(request: web.Request) -> web.Response:
            partition = served(request)
            try:
                body = await request.json()
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
                return _error(400, f"the request body is not valid JSON: {exc}")
            try:
                x, request_id = parse_infer_request(body, partition.input_shape, max_samples)
                answers = await edge.infer(x)
            except (BadRequest, PartitionError) as exc:
                return _error(400, str(exc))
            except (NotReady, OffloadFailed) as exc:
                return _error(503, str(exc))
            return web.json_response(infer_response(model_name, answers, request_id))

        app.router.add_post("/v2/models/{name}/infer", infer)
    return app
