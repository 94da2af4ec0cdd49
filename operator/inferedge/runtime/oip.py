"""The Open Inference Protocol v2 (KServe v2, Triton's HTTP/REST API) as pydantic models.

Requests are validated by these models instead of by hand, KServe's `v2_datamodels` style, and
responses are built from them, so what the edge accepts and answers is declared in one place.
The binary tensor data extension (Triton's `binary_tensor_data`, the default of `tritonclient`
and of KServe's `InferRequest`) is spelled with the parameters below: `binary_data_size` on an
input, `binary_data` on a requested output and `binary_data_output` on the request.

OIP allows only scalar parameters (string, number, boolean); inferedge's per-sample answer
details in an infer response's `parameters`, and the plan in a model's metadata, go beyond it.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictBool, StrictInt
from pydantic_core import PydanticCustomError


def _scalar(value: object) -> bool | int | float | str:
    # One check with one message, where a union of types would report a failure per member.
    if isinstance(value, bool | int | float | str):
        return value
    raise PydanticCustomError("scalar", "Input should be a string, number or boolean")


Scalar = Annotated[bool | int | float | str, PlainValidator(_scalar)]
"""What OIP allows as a parameter value."""

INFERENCE_HEADER: Final = "Inference-Header-Content-Length"
"""Bytes of JSON at the start of a body that carries binary tensors after it."""
EXTENSIONS: Final = ("binary_tensor_data", "parameters")
"""The OIP/Triton extensions this server speaks, as listed by `GET /v2`."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputParameters(_Strict):
    """Parameters of one input tensor; shared memory and other extensions are refused."""

    binary_data_size: StrictInt | None = Field(
        default=None,
        ge=0,
        description="Bytes of this tensor in the binary part of the body (binary extension).",
    )


class RequestInput(_Strict):
    """One input tensor of an infer request."""

    name: str = Field(description="The model input this tensor feeds.")
    shape: list[StrictInt] = Field(description="Tensor shape, batch first.")
    datatype: str = Field(description="OIP datatype, e.g. FP32.")
    parameters: InputParameters | None = Field(default=None, description="Tensor parameters.")
    data: list[Any] | None = Field(
        default=None,
        description="Values, flat in row-major order or nested as the shape; absent when "
        "parameters.binary_data_size says the tensor is in the binary part.",
    )


class OutputParameters(_Strict):
    """Parameters of one requested output."""

    binary_data: StrictBool | None = Field(
        default=None, description="Return this output in the binary part of the response."
    )


class RequestOutput(_Strict):
    """An output the client asks for (all outputs when the request names none)."""

    name: str = Field(description="Output name.")
    parameters: OutputParameters | None = Field(default=None, description="Output parameters.")


class RequestParameters(BaseModel):
    """Request parameters: `binary_data_output` is read, any other scalar is accepted."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Scalar] = Field(init=False)

    binary_data_output: StrictBool | None = Field(
        default=None,
        description="Return every output not asked otherwise in the binary part of the response.",
    )


class InferenceRequest(_Strict):
    """`POST /v2/models/{name}[/versions/{version}]/infer`."""

    id: str | None = Field(default=None, description="Echoed in the response.")
    model_name: str | None = Field(
        default=None, description="Sent by KServe's client; the path names the model."
    )
    parameters: RequestParameters | None = Field(default=None, description="Request parameters.")
    inputs: list[RequestInput] = Field(description="Input tensors.")
    outputs: list[RequestOutput] | None = Field(default=None, description="Requested outputs.")


class MetadataTensor(_Strict):
    """A tensor's name, datatype and shape (-1: any size) in metadata."""

    name: str
    datatype: str
    shape: list[int]


class ServerMetadata(_Strict):
    """`GET /v2`."""

    name: str
    version: str
    extensions: list[str]


class ServerLive(_Strict):
    """`GET /v2/health/live`."""

    live: bool


class ServerReady(_Strict):
    """`GET /v2/health/ready`."""

    ready: bool


class BrokerState(_Strict):
    """`GET /v2/health/broker`: inferedge's own, the edge's link to the cloud."""

    connected: bool = Field(description="The NATS connection is up.")
    degraded: bool = Field(
        description="An edge without its broker answers every request from its exits."
    )


class ModelMetadata(_Strict):
    """`GET /v2/models/{name}`; `parameters` carries the plan and the live c_thr."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: dict[str, Any]


class ModelReady(_Strict):
    """`GET /v2/models/{name}/ready`."""

    name: str
    ready: bool


class ResponseOutput(_Strict):
    """One output tensor of an infer response: JSON `data`, or a `binary_data_size` parameter
    and its bytes after the JSON."""

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Scalar] | None = None
    data: list[Any] | None = None


class InferenceResponse(_Strict):
    """The answer to an infer request; `parameters` holds one list entry per sample."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]
    parameters: dict[str, list[Any]]


class ErrorResponse(_Strict):
    """Every refusal: one line naming the field and what was expected."""

    error: str
