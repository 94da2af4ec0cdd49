"""Bytes to an input batch and answers to bytes, for the OIP v2 infer endpoint.

`decode_infer` is pure and CPU-bound: the HTTP layer runs it off the event loop (in a thread,
or in a worker process for large JSON bodies, see `inferedge.runtime.decoding`), so it imports
nothing heavier than numpy and pydantic and everything it takes and returns pickles. Every bad
input raises `Refused` with a 4xx status and one line: `<field>: expected <what>, got <what>`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pydantic_core
from pydantic import ValidationError

from inferedge.core.errors import InferedgeError
from inferedge.runtime.messages import Answer
from inferedge.runtime.oip import (
    INFERENCE_HEADER,
    InferenceRequest,
    InferenceResponse,
    RequestInput,
    ResponseOutput,
)

DATATYPE: Final = "FP32"
OUTPUTS: Final = {"prediction": ("INT64", "<i8"), "confidence": ("FP32", "<f4")}
"""Each output's OIP datatype and its little-endian numpy dtype in the binary extension."""
JSON_DEPTH_CEILING: Final = 200  # pydantic-core's JSON parser refuses deeper documents itself


class Refused(InferedgeError):
    """A request answered with `status` and one line; `reason` is its bounded metric label."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:  # keeps status and reason across processes
        return (type(self), (self.status, self.reason, str(self)))


def bad(field: str, message: str, reason: str = "invalid_request") -> Refused:
    """A 400 for `field`; `message` says what was expected and what came."""
    return Refused(400, reason, f"{field}: {message}")


@dataclass(frozen=True)
class Limits:
    """What one infer request may ask of the edge; each is refused with a 4xx beyond it."""

    max_body_bytes: int = 64 << 20
    max_depth: int = 32
    max_rows: int = 256
    body_timeout_s: float = 30.0
    header_timeout_s: float = 30.0
    """A connection whose request headers have not all arrived by then is closed (also the
    idle keep-alive time)."""
    process_decode_bytes: int = 1 << 20
    """JSON larger than this is parsed in a worker process: parsing holds the GIL, so a
    thread would still stall the event loop for as long as one parse of the whole body."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth < JSON_DEPTH_CEILING:
            raise ValueError(f"max_depth: expected 1 to {JSON_DEPTH_CEILING - 1}")
        if min(self.max_rows, self.max_body_bytes, self.body_timeout_s, self.header_timeout_s) <= 0:
            raise ValueError("every limit must be positive")


@dataclass(frozen=True)
class InputSpec:
    """The one input the served partition takes: its name and the shape of one sample."""

    name: str
    sample_shape: tuple[int, ...]


@dataclass
class Decoded:
    """A validated request (tensor values dropped) and its input batch, float32 [N, *sample]."""

    request: InferenceRequest
    batch: np.ndarray


def decode_infer(
    body: bytes | bytearray, header: str | None, spec: InputSpec, limits: Limits
) -> Decoded:
    """Validate an infer request body (JSON, or JSON then binary tensors) and decode its input.

    `header` is the request's Inference-Header-Content-Length, if any.
    """
    json_part, binary = _split(body, header)
    request = _validated(_parse(json_part, limits.max_depth))
    tensor = _the_input(request, spec)
    shape = _shape(tensor, spec, limits.max_rows)
    for i, output in enumerate(request.outputs or ()):
        if output.name not in OUTPUTS:
            raise bad(f"outputs[{i}].name", f"expected one of {_names()}, got {output.name!r}")
    size = tensor.parameters.binary_data_size if tensor.parameters else None
    if size is not None:
        batch = _from_binary(tensor, size, shape, binary, header)
    elif binary:
        raise bad("body", f"expected no bytes after the JSON when no input has "
                  f"parameters.binary_data_size, got {len(binary)}")  # fmt: skip
    else:
        batch = _from_json(tensor.data, shape)
    if not np.isfinite(batch).all():
        raise bad("inputs[0].data", "expected finite FP32 numbers, got NaN, infinity or a "
                  "value beyond FP32's range")  # fmt: skip
    tensor.data = None  # the values travel as `batch`; do not pickle them back as a list
    return Decoded(request, batch)


def _split(body: bytes | bytearray, header: str | None) -> tuple[bytes | bytearray, memoryview]:
    # Views, not slices: copying 50 MB of tensor bytes would hold the GIL for tens of ms.
    if header is None:
        return body, memoryview(b"")
    length = int(header) if header.strip().isdigit() else -1
    if not 1 <= length <= len(body):
        raise bad(INFERENCE_HEADER, f"expected the JSON's byte length, 1 to the body's "
                  f"{len(body)}, got {header[:40]!r}")  # fmt: skip
    return bytes(memoryview(body)[:length]), memoryview(body)[length:]


def _parse(text: bytes | bytearray, max_depth: int) -> object:
    try:
        document = pydantic_core.from_json(text, allow_inf_nan=True)
    except ValueError as exc:
        if "recursion limit" in str(exc):
            raise _too_deep(max_depth, "") from None
        message = f"expected a JSON object, got invalid JSON ({exc})"
        raise bad("body", message, "invalid_json") from None
    where = _deeper_than(document, max_depth)
    if where is not None:
        raise _too_deep(max_depth, where)
    return document


def _too_deep(max_depth: int, where: str) -> Refused:
    at = f" at {where}" if where else ""
    return bad("body", f"expected JSON nested at most {max_depth} levels, got deeper{at}",
               "too_deep")  # fmt: skip


def _deeper_than(value: object, levels: int, path: str = "") -> str | None:
    """Where `value` nests deeper than `levels` containers, or None.

    A list is walked only when its first item is a container (rows of a nested tensor): flat
    lists of numbers, the bulk of a body, cost nothing, and numpy refuses mixed lists later.
    """
    if not isinstance(value, list | dict):
        return None
    if levels == 0:
        return path or "(root)"
    if isinstance(value, dict):
        items: Sequence[tuple[str, object]] = [(f"{path}.{k}" if path else k, v)
                                               for k, v in value.items()]  # fmt: skip
    elif value and isinstance(value[0], list | dict):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    else:
        return None
    for where, item in items:
        found = _deeper_than(item, levels - 1, where)
        if found is not None:
            return found
    return None


def _validated(document: object) -> InferenceRequest:
    if not isinstance(document, dict):
        raise bad("body", f"expected a JSON object (an OIP infer request), got {_kind(document)}")
    try:
        return InferenceRequest.model_validate(document)
    except ValidationError as exc:
        raise describe(exc) from None


def describe(exc: ValidationError) -> Refused:
    """The first problem pydantic found, as `<field>: expected <what>, got <what>`."""
    error = exc.errors(include_url=False)[0]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
    field = field.lstrip(".") or "body"
    message = error["msg"]
    if error["type"] == "missing":
        return bad(field, "expected a value, got none (required)")
    if error["type"] == "extra_forbidden":
        return bad(field, "expected no such field (unknown or unsupported extension)")
    if error["type"] in ("model_type", "dict_type"):
        message = "expected a JSON object"
    elif message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ")
    return bad(field, f"{message}, got {_kind(error.get('input'))}")


def _kind(value: object) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _names() -> str:
    return ", ".join(map(repr, OUTPUTS))


def _the_input(request: InferenceRequest, spec: InputSpec) -> RequestInput:
    if len(request.inputs) != 1:
        raise bad("inputs", f"expected exactly one tensor named {spec.name!r}, "
                  f"got {len(request.inputs)}")  # fmt: skip
    tensor = request.inputs[0]
    if tensor.name != spec.name:
        raise bad("inputs[0].name", f"expected {spec.name!r}, got {tensor.name!r}")
    if tensor.datatype != DATATYPE:
        raise bad("inputs[0].datatype", f"expected {DATATYPE!r}, got {tensor.datatype!r}")
    return tensor


def _shape(tensor: RequestInput, spec: InputSpec, max_rows: int) -> list[int]:
    shape = tensor.shape
    sample = ", ".join(map(str, spec.sample_shape))
    expected = f"expected [N, {sample}] with 1 <= N <= {max_rows}, got {shape}"
    if tuple(shape[1:]) != spec.sample_shape or not shape or shape[0] < 1:
        raise bad("inputs[0].shape", expected)
    if shape[0] > max_rows:
        raise bad("inputs[0].shape", expected, "too_many_rows")
    return shape


def _from_binary(
    tensor: RequestInput, size: int, shape: list[int], binary: memoryview, header: str | None
) -> np.ndarray:
    field = "inputs[0].parameters.binary_data_size"
    if tensor.data is not None:
        raise bad("inputs[0].data", f"expected no data when {field} is given, got a list")
    if header is None:
        raise bad(INFERENCE_HEADER, f"expected the header when {field} is given, got none")
    needed = math.prod(shape) * 4
    if size != needed:
        raise bad(field, f"expected {needed} (shape {shape} of FP32), got {size}")
    if len(binary) != size:
        raise bad("body", f"expected {size} bytes of tensor data after the JSON, got {len(binary)}")
    # A copy: frombuffer's view is read-only, and torch wants memory it may write.
    return np.frombuffer(binary, dtype="<f4").reshape(shape).astype(np.float32)


def _from_json(data: list[Any] | None, shape: list[int]) -> np.ndarray:
    field, needed = "inputs[0].data", math.prod(shape)
    if data is None:
        raise bad(field, "expected a list of numbers, or parameters.binary_data_size and the "
                  f"{INFERENCE_HEADER} header (binary extension), got none")  # fmt: skip
    try:
        array = np.asarray(data)
    except (ValueError, TypeError):  # ragged nesting, or mixed lists and numbers
        message = "expected numbers, flat or nested as the shape, got ragged lists"
        raise bad(field, message) from None
    if array.dtype.kind not in "iuf":
        # Strings, booleans and nulls would convert silently with a float dtype: check the kind.
        got = {"b": "booleans", "U": "strings"}.get(array.dtype.kind, "nulls, objects or huge ints")
        raise bad(field, f"expected numbers only, got {got}")
    if array.size != needed or array.ndim not in (1, len(shape)):
        raise bad(field, f"expected {needed} numbers for shape {shape}, flat or nested as it, "
                  f"got {array.size} in shape {list(array.shape)}")  # fmt: skip
    with np.errstate(over="ignore"):  # values beyond float32 become infinite, refused after
        return array.reshape(shape).astype(np.float32)


def encode_response(
    model_name: str,
    model_version: str,
    answers: list[Answer],
    request: InferenceRequest,
) -> tuple[bytes, int | None]:
    """The response body and, when some output is binary, the JSON's length for the
    Inference-Header-Content-Length header. Outputs follow `request.outputs` (all of them
    when it names none); each is binary when asked, on itself or for the whole request."""
    values: dict[str, np.ndarray] = {
        "prediction": np.array([a.prediction for a in answers], dtype=np.int64),
        "confidence": np.array([a.confidence for a in answers], dtype=np.float32),
    }
    everything = bool(request.parameters and request.parameters.binary_data_output)
    wanted = [(name, everything) for name in OUTPUTS]
    if request.outputs:
        wanted = [(o.name, everything) for o in request.outputs]
        for i, output in enumerate(request.outputs):
            if output.parameters is not None and output.parameters.binary_data is not None:
                wanted[i] = (output.name, output.parameters.binary_data)
    outputs: list[ResponseOutput] = []
    blobs: list[bytes] = []
    for name, binary in wanted:
        datatype, dtype = OUTPUTS[name]
        array = values[name]
        if binary:
            blob = array.astype(dtype).tobytes()
            blobs.append(blob)
            outputs.append(ResponseOutput(name=name, shape=[len(answers)], datatype=datatype,
                                          parameters={"binary_data_size": len(blob)}))  # fmt: skip
        else:
            outputs.append(ResponseOutput(name=name, shape=[len(answers)], datatype=datatype,
                                          data=array.tolist()))  # fmt: skip
    response = InferenceResponse(
        model_name=model_name,
        model_version=model_version,
        id=request.id,
        outputs=outputs,
        parameters={
            "exit_index": [a.exit_index for a in answers],
            "cut_index": [a.cut_index for a in answers],
            "location": [a.location for a in answers],
            "degraded": [a.degraded for a in answers],
            "reason": [a.reason for a in answers],
            "timings_ms": [a.timings for a in answers],
        },
    )
    text = response.model_dump_json(exclude_none=True).encode()
    if not blobs:
        return text, None
    return b"".join([text, *blobs]), len(text)
