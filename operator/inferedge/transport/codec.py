"""The activation wire format: NATS headers describing a tensor, plus its raw bytes.

Headers (all values plain ASCII strings):

- `Inferedge-Version`: the wire version, `1`; any other value is refused.
- `Inferedge-Request-Id`: 1-128 characters of `A-Z a-z 0-9 . _ : -`, starting alphanumeric.
- `Inferedge-Plan-Hash`: the plan's content hash, 8-64 lowercase hex digits.
- `Inferedge-Dtype`: the dtype `decode` returns (`float32`, `int64`, `bool`, ...).
- `Inferedge-Shape`: `[1,3,224,224]`; `[]` is a scalar; dims may be 0; at most 8 dims.
- `Inferedge-Encoding`: how the bytes are stored: `raw` (the dtype itself), `fp16` (IEEE half
  floats, for float dtypes) or `int8` (per-tensor affine quantisation, for float dtypes).
- `Inferedge-Scale`, `Inferedge-Zero-Point`: the int8 parameters, present exactly for `int8`:
  value = (q - zero_point) * scale. Zero is always exactly representable.
- `Inferedge-Extra-<Key>`: caller-defined values, returned in `WireMeta.extra`.

The payload is the tensor in C order, little-endian, with nothing around it. Headers that do not
start with `Inferedge-` (NATS status lines, tracing) are ignored; an unknown `Inferedge-` header
is an error, because a newer sender would rely on it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from inferedge.transport.errors import WireError
from inferedge.transport.headers import PREFIX, header_block_size

WIRE_VERSION: Final = "1"

VERSION: Final = "Inferedge-Version"
REQUEST_ID: Final = "Inferedge-Request-Id"
PLAN_HASH: Final = "Inferedge-Plan-Hash"
DTYPE: Final = "Inferedge-Dtype"
SHAPE: Final = "Inferedge-Shape"
ENCODING: Final = "Inferedge-Encoding"
SCALE: Final = "Inferedge-Scale"
ZERO_POINT: Final = "Inferedge-Zero-Point"
EXTRA_PREFIX: Final = "Inferedge-Extra-"

Encoding = Literal["raw", "fp16", "int8"]
ENCODINGS: Final[tuple[str, ...]] = get_args(Encoding)

# Bytes-like values a payload may be: views let the hot path skip copies.
Payload = bytes | bytearray | memoryview

MAX_DIMS: Final = 8
MAX_HEADER_BYTES: Final = 8192
MAX_EXTRA_VALUE_CHARS: Final = 1024

DTYPES: Final[frozenset[str]] = frozenset(
    {
        "bool",
        "uint8",
        "int8",
        "uint16",
        "int16",
        "uint32",
        "int32",
        "uint64",
        "int64",
        "float16",
        "float32",
        "float64",
    }
)
_FLOAT_DTYPES: Final = frozenset({"float16", "float32", "float64"})
# The wire is little-endian; these are looked up per message, so they are built once.
_LITTLE: Final = {name: np.dtype(name).newbyteorder("<") for name in DTYPES}
_WIRE_DTYPE: Final = {"fp16": _LITTLE["float16"], "int8": _LITTLE["int8"]}
_KNOWN: Final = frozenset(
    {VERSION, REQUEST_ID, PLAN_HASH, DTYPE, SHAPE, ENCODING, SCALE, ZERO_POINT}
)
_REQUIRED: Final = (VERSION, REQUEST_ID, PLAN_HASH, DTYPE, SHAPE, ENCODING)

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_REQUEST_ID_RULE = "1-128 characters of A-Z a-z 0-9 . _ : -, starting alphanumeric"
_PLAN_HASH = re.compile(r"[0-9a-f]{8,64}")
_PLAN_HASH_RULE = "8-64 lowercase hex digits"
_EXTRA_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
# 18 digits keep int() fast and far below the 4300-digit limit that raises ValueError.
_SHAPE = re.compile(r"\[([0-9]{1,18}(,[0-9]{1,18})*)?\]")
_INT8_LEVELS: Final = 255
_FP16_MAX: Final = float(np.finfo(np.float16).max)


@dataclass(frozen=True, slots=True)
class WireMeta:
    """What the headers of one message say about its tensor."""

    request_id: str
    plan_hash: str
    dtype: str
    shape: tuple[int, ...]
    encoding: Encoding
    scale: float | None = None
    zero_point: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


def encode(
    array: npt.ArrayLike,
    *,
    request_id: str,
    plan_hash: str,
    encoding: Encoding = "raw",
    extra: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], memoryview]:
    """Headers and payload for one tensor.

    With `raw` encoding of a C-contiguous little-endian array the payload is a view of the
    array's own memory, not a copy: do not change the array until the message is sent.
    WireError names the argument that cannot be sent.
    """
    tensor = array if isinstance(array, np.ndarray) else np.asarray(array)
    dtype = tensor.dtype.name
    if dtype not in DTYPES:
        raise WireError(f"dtype {dtype}: expected one of {', '.join(sorted(DTYPES))}")
    if tensor.ndim > MAX_DIMS:
        raise WireError(f"shape {tensor.shape}: expected at most {MAX_DIMS} dimensions")
    headers = {
        VERSION: WIRE_VERSION,
        REQUEST_ID: _checked(REQUEST_ID, request_id, _REQUEST_ID, _REQUEST_ID_RULE),
        PLAN_HASH: _checked(PLAN_HASH, plan_hash, _PLAN_HASH, _PLAN_HASH_RULE),
        DTYPE: dtype,
        SHAPE: "[" + ",".join(str(dim) for dim in tensor.shape) + "]",
        ENCODING: encoding,
    }
    if encoding == "raw":
        wire = tensor.astype(_LITTLE[dtype], order="C", copy=False)
    elif encoding not in ENCODINGS:
        raise WireError(f"encoding {encoding!r}: expected one of {', '.join(ENCODINGS)}")
    elif dtype not in _FLOAT_DTYPES:
        raise WireError(f"encoding {encoding}: needs a float tensor, got {dtype}")
    elif encoding == "fp16":
        wire = _to_fp16(tensor)
    else:
        wire, scale, zero_point = _quantise(tensor)
        headers[SCALE] = repr(scale)
        headers[ZERO_POINT] = str(zero_point)
    if extra:
        # Without extras the headers are bounded far below the limit by their own rules.
        for key, value in extra.items():
            headers[EXTRA_PREFIX + _checked_extra(key, value)] = value
        if header_block_size(headers) > MAX_HEADER_BYTES:
            raise WireError(
                f"headers take more than {MAX_HEADER_BYTES} bytes: shorten extra values"
            )
    # A flat byte view; memoryview cannot cast a shape with a zero in it, hence the guard.
    return headers, wire.data.cast("B") if wire.size else memoryview(b"")


def decode(headers: Mapping[str, str] | None, payload: Payload) -> tuple[np.ndarray, WireMeta]:
    """The tensor and its metadata from one message; WireError names the offending header.

    A `raw` tensor is a view of `payload` (read-only when the payload is `bytes`); `fp16` and
    `int8` tensors are new arrays of the header's dtype.
    """
    meta = read_meta(headers)
    wire = _LITTLE[meta.dtype] if meta.encoding == "raw" else _WIRE_DTYPE[meta.encoding]
    count = math.prod(meta.shape)
    if count * wire.itemsize != len(payload):
        raise WireError(
            f"{SHAPE}: {list(meta.shape)} of {meta.encoding} {meta.dtype} needs "
            f"{count * wire.itemsize} bytes, the payload has {len(payload)}"
        )
    flat = np.frombuffer(payload, dtype=wire, count=count)
    if meta.encoding == "raw":
        return flat.reshape(meta.shape), meta
    values = flat.astype(meta.dtype)
    if meta.encoding == "int8":
        # read_meta sets both for int8
        assert meta.scale is not None
        assert meta.zero_point is not None
        values -= meta.zero_point
        values *= meta.scale
    return values.reshape(meta.shape), meta


def read_meta(headers: Mapping[str, str] | None) -> WireMeta:
    """Validate the headers of a message and return what they say; WireError otherwise."""
    headers = headers or {}
    extra: dict[str, str] = {}
    for key, value in headers.items():
        if key.startswith(EXTRA_PREFIX):
            extra[key.removeprefix(EXTRA_PREFIX)] = value
        elif key.startswith(PREFIX) and key not in _KNOWN:
            raise WireError(f"{key}: unknown header (wire version {WIRE_VERSION})")
    for key in _REQUIRED:
        if key not in headers:
            raise WireError(f"{key}: missing header")
    version = headers[VERSION]
    if version != WIRE_VERSION:
        raise WireError(f"{VERSION}: {_shown(version)}: this worker speaks {WIRE_VERSION}")
    dtype = headers[DTYPE]
    if dtype not in DTYPES:
        raise WireError(f"{DTYPE}: {_shown(dtype)}: expected one of {', '.join(sorted(DTYPES))}")
    encoding = headers[ENCODING]
    if encoding not in ENCODINGS:
        raise WireError(f"{ENCODING}: {_shown(encoding)}: expected one of {', '.join(ENCODINGS)}")
    if encoding != "raw" and dtype not in _FLOAT_DTYPES:
        raise WireError(f"{ENCODING}: {encoding} needs a float {DTYPE}, got {dtype}")
    scale, zero_point = _int8_parameters(headers) if encoding == "int8" else (None, None)
    if encoding != "int8":
        for key in (SCALE, ZERO_POINT):
            if key in headers:
                raise WireError(f"{key}: only int8 encoding has it, this is {encoding}")
    return WireMeta(
        request_id=_checked(REQUEST_ID, headers[REQUEST_ID], _REQUEST_ID, _REQUEST_ID_RULE),
        plan_hash=_checked(PLAN_HASH, headers[PLAN_HASH], _PLAN_HASH, _PLAN_HASH_RULE),
        dtype=dtype,
        shape=_parse_shape(headers[SHAPE]),
        encoding=encoding,  # type: ignore[arg-type]  # checked against ENCODINGS above
        scale=scale,
        zero_point=zero_point,
        extra=extra,
    )


def _parse_shape(text: str) -> tuple[int, ...]:
    if text.startswith("[") and "-" in text:
        raise WireError(f"{SHAPE}: {_shown(text)}: dimensions cannot be negative")
    if not _SHAPE.fullmatch(text):
        raise WireError(f"{SHAPE}: {_shown(text)}: expected [d0,d1,...] or [] for a scalar")
    dims = tuple(int(part) for part in text[1:-1].split(",") if part)
    if len(dims) > MAX_DIMS:
        raise WireError(f"{SHAPE}: {len(dims)} dimensions, at most {MAX_DIMS} allowed")
    return dims


def _int8_parameters(headers: Mapping[str, str]) -> tuple[float, int]:
    for key in (SCALE, ZERO_POINT):
        if key not in headers:
            raise WireError(f"{key}: missing header (int8 encoding needs it)")
    try:
        scale = float(headers[SCALE])
    except ValueError:
        scale = math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise WireError(f"{SCALE}: {_shown(headers[SCALE])}: expected a finite number above 0")
    text = headers[ZERO_POINT]
    if not re.fullmatch(r"-?[0-9]{1,3}", text) or not -128 <= int(text) <= 127:
        raise WireError(f"{ZERO_POINT}: {_shown(text)}: expected an integer from -128 to 127")
    return scale, int(text)


def _to_fp16(tensor: np.ndarray) -> np.ndarray:
    low, high = _value_range(tensor)
    if not -_FP16_MAX <= low <= high <= _FP16_MAX:
        raise WireError(
            f"encoding fp16: the tensor has values beyond ±{_FP16_MAX:.0f} or not finite; "
            "send it raw"
        )
    return tensor.astype("<f2", order="C")


def _quantise(tensor: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Affine int8 over [min(x, 0), max(x, 0)], so zero (ReLU output) is exact."""
    low, high = _value_range(tensor)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise WireError("encoding int8: the tensor has values that are not finite; send it raw")
    low, high = min(low, 0.0), max(high, 0.0)
    # The decoder multiplies in float32, so the scale is a float32 value on both sides.
    scale = float(np.float32((high - low) / _INT8_LEVELS)) if high > low else 1.0
    zero_point = int(np.clip(round(-128 - low / scale), -128, 127))
    work = np.divide(tensor, np.float32(scale), dtype=np.float32)
    np.rint(work, out=work)
    work += zero_point
    np.clip(work, -128, 127, out=work)
    return work.astype("<i1"), scale, zero_point


def _value_range(tensor: np.ndarray) -> tuple[float, float]:
    """Smallest and largest value; NaN when any value is NaN (min and max propagate it)."""
    if tensor.size == 0:
        return 0.0, 0.0
    return float(tensor.min()), float(tensor.max())


def _checked(name: str, value: str, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise WireError(f"{name}: {_shown(value)}: expected {rule}")
    return value


def _checked_extra(key: str, value: str) -> str:
    if not isinstance(key, str) or not _EXTRA_KEY.fullmatch(key):
        raise WireError(
            f"extra key {_shown(key)}: expected 1-64 letters, digits or '-', starting alphanumeric"
        )
    if (
        not isinstance(value, str)
        or len(value) > MAX_EXTRA_VALUE_CHARS
        or not value.isascii()
        or not value.isprintable()
        or value != value.strip()
    ):
        raise WireError(
            f"extra {key}: expected printable ASCII without surrounding spaces, "
            f"at most {MAX_EXTRA_VALUE_CHARS} characters"
        )
    return key


def _shown(value: object) -> str:
    """A value for an error line: quoted and cut short, so a hostile header cannot flood logs."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
