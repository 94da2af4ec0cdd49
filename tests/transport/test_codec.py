"""The activation wire format: round trips, lossy encodings' error bounds, and refusals."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from inferedge.transport.codec import (
    MAX_DIMS,
    WIRE_VERSION,
    Encoding,
    WireMeta,
    decode,
    encode,
)
from inferedge.transport.errors import WireError

PLAN = "0123456789abcdef"
SHAPES = [(), (0,), (1,), (7,), (2, 3), (0, 5), (1, 3, 8, 8), (2, 1, 3, 1, 2, 1, 2, 1)]
DTYPES = ["float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool"]


def sample(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if np.dtype(dtype).kind == "f":
        return rng.normal(0, 3, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def wire(array: np.ndarray, encoding: Encoding = "raw") -> tuple[dict[str, str], bytes]:
    headers, payload = encode(array, request_id="req-1", plan_hash=PLAN, encoding=encoding)
    return headers, bytes(payload)  # as a receiver gets it: bytes, not a view


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_raw_round_trip_is_exact(shape: tuple[int, ...], dtype: str) -> None:
    array = sample(shape, dtype)
    headers, payload = wire(array)
    out, meta = decode(headers, payload)
    assert out.dtype == array.dtype
    assert out.shape == shape
    np.testing.assert_array_equal(out, array)
    assert meta == WireMeta("req-1", PLAN, dtype, shape, "raw")
    assert len(payload) == array.nbytes


def test_headers_are_plain_strings_with_the_prefix_and_version() -> None:
    headers, _ = encode(np.zeros((1, 3), np.float32), request_id="r", plan_hash=PLAN)
    assert headers == {
        "Inferedge-Version": WIRE_VERSION,
        "Inferedge-Request-Id": "r",
        "Inferedge-Plan-Hash": PLAN,
        "Inferedge-Dtype": "float32",
        "Inferedge-Shape": "[1,3]",
        "Inferedge-Encoding": "raw",
    }


def test_raw_payload_of_a_contiguous_array_is_a_view_not_a_copy() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    _, payload = encode(array, request_id="r", plan_hash=PLAN)
    assert np.shares_memory(np.frombuffer(payload, np.float32), array)
    out, _ = decode(*encode(array, request_id="r", plan_hash=PLAN))
    assert np.shares_memory(out, array)


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2],
        lambda: np.arange(24, dtype=np.float32).reshape(4, 6).T,
        lambda: np.arange(6, dtype=">i4").reshape(2, 3),
        lambda: np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
    ],
    ids=["strided", "transposed", "big-endian", "fortran"],
)
def test_non_contiguous_and_big_endian_arrays_arrive_as_their_values(
    make: Callable[[], np.ndarray],
) -> None:
    array = make()
    out, _ = decode(*wire(array))
    np.testing.assert_array_equal(out, array)
    assert out.dtype == array.dtype.newbyteorder("=")


def test_scalars_from_python_values_and_numpy_scalars() -> None:
    out, meta = decode(*wire(np.asarray(np.float32(2.5))))
    assert out.shape == ()
    assert out == 2.5
    assert meta.shape == ()
    out, _ = decode(*wire(np.asarray(7)))
    assert out == 7


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 64, 7, 7)], ids=str)
def test_fp16_halves_float32_and_stays_within_half_precision(
    shape: tuple[int, ...], dtype: str
) -> None:
    array = sample(shape, dtype, seed=1)
    headers, payload = wire(array, "fp16")
    assert len(payload) == 2 * array.size
    out, meta = decode(headers, payload)
    assert out.dtype == array.dtype
    assert meta.encoding == "fp16"
    # Half precision keeps 11 significant bits: relative error at most 2**-11.
    np.testing.assert_allclose(out, array, rtol=2**-11, atol=2**-24)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "values",
    [
        np.linspace(-3, 5, 1000),
        np.linspace(0, 9, 1000),  # ReLU output: all >= 0
        np.linspace(-9, -1, 1000),
        np.zeros(10),
        np.full(10, 4.25),
        np.array([]),
    ],
    ids=["mixed", "non-negative", "negative", "zeros", "constant", "empty"],
)
def test_int8_error_is_within_half_a_step_and_zero_is_exact(values: np.ndarray, dtype: str) -> None:
    array = values.astype(dtype).reshape(-1, 1)
    headers, payload = wire(array, "int8")
    assert len(payload) == array.size
    out, meta = decode(headers, payload)
    assert out.dtype == array.dtype
    assert meta.scale is not None
    assert meta.zero_point is not None
    assert -128 <= meta.zero_point <= 127
    bound = meta.scale / 2 + 1e-6 * float(np.abs(array).max(initial=1.0))
    assert float(np.abs(out - array).max(initial=0.0)) <= bound
    np.testing.assert_array_equal(out[array == 0], 0)


def test_int8_headers_carry_scale_and_zero_point() -> None:
    headers, payload = wire(np.array([0.0, 1.0, 2.55], np.float32), "int8")
    assert float(headers["Inferedge-Scale"]) == pytest.approx(0.01)
    assert headers["Inferedge-Zero-Point"] == "-128"
    assert np.frombuffer(payload, np.int8).tolist() == [-128, -28, 127]


def test_extra_values_travel_in_their_own_headers() -> None:
    headers, payload = encode(
        np.ones(2, np.float32),
        request_id="r",
        plan_hash=PLAN,
        extra={"Exit": "2", "Deadline-Ms": "250"},
    )
    assert headers["Inferedge-Extra-Exit"] == "2"
    _, meta = decode(headers, payload)
    assert meta.extra == {"Exit": "2", "Deadline-Ms": "250"}


def test_headers_of_other_systems_are_ignored() -> None:
    headers, payload = wire(np.ones(2, np.float32))
    out, _ = decode({**headers, "Traceparent": "00-abc-def-01", "Status": "200"}, payload)
    assert out.tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"array": np.ones(2, np.complex64)}, "dtype complex64: expected one of"),
        ({"array": np.array(["a"])}, "dtype str32: expected one of"),
        ({"array": np.zeros((1,) * (MAX_DIMS + 1))}, "expected at most 8 dimensions"),
        ({"request_id": ""}, "Inferedge-Request-Id: '': expected 1-128 characters"),
        ({"request_id": "a b"}, "Inferedge-Request-Id: 'a b'"),
        ({"request_id": "x" * 129}, "Inferedge-Request-Id"),
        ({"plan_hash": "ABCDEF12"}, "Inferedge-Plan-Hash: 'ABCDEF12': expected 8-64 lowercase hex"),
        ({"plan_hash": "abc"}, "Inferedge-Plan-Hash"),
        ({"encoding": "bf16"}, "encoding 'bf16': expected one of raw, fp16, int8"),
        ({"array": np.ones(3, np.int32), "encoding": "fp16"}, "needs a float tensor, got int32"),
        ({"array": np.ones(3, np.uint8), "encoding": "int8"}, "needs a float tensor, got uint8"),
        ({"array": np.array([1e5], np.float32), "encoding": "fp16"}, "beyond ±65504"),
        ({"array": np.array([np.nan], np.float32), "encoding": "fp16"}, "not finite"),
        ({"array": np.array([np.inf, 1.0]), "encoding": "int8"}, "int8: the tensor has values"),
        ({"extra": {"bad key": "v"}}, "extra key 'bad key'"),
        ({"extra": {"k": " padded"}}, "extra k: expected printable ASCII"),
        ({"extra": {"k": "line\nbreak"}}, "extra k: expected printable ASCII"),
        ({"extra": {"k": "é"}}, "extra k: expected printable ASCII"),
        ({"extra": {f"k{i}": "v" * 1000 for i in range(9)}}, "headers take more than 8192"),
    ],
)
def test_encode_refuses_what_cannot_be_sent(kwargs: dict[str, object], problem: str) -> None:
    arguments: dict[str, object] = {
        "array": np.ones(3, np.float32),
        "request_id": "r",
        "plan_hash": PLAN,
        **kwargs,
    }
    with pytest.raises(WireError, match=problem.replace("[", r"\[")) as caught:
        encode(**arguments)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


GOOD_HEADERS, GOOD_PAYLOAD = wire(np.arange(6, dtype=np.float32).reshape(2, 3))
INT8_HEADERS, INT8_PAYLOAD = wire(np.arange(6, dtype=np.float32), "int8")


def changed(headers: dict[str, str], **changes: str | None) -> dict[str, str]:
    """Headers with `Inferedge-<Name>` set, or removed where the value is None."""
    out = dict(headers)
    for name, value in changes.items():
        key = "Inferedge-" + name.replace("_", "-")
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(
    ("headers", "payload", "problem"),
    [
        ({}, GOOD_PAYLOAD, "Inferedge-Version: missing header"),
        (None, GOOD_PAYLOAD, "Inferedge-Version: missing header"),
        (changed(GOOD_HEADERS, Version=None), GOOD_PAYLOAD, "Inferedge-Version: missing"),
        (changed(GOOD_HEADERS, Request_Id=None), GOOD_PAYLOAD, "Inferedge-Request-Id: missing"),
        (changed(GOOD_HEADERS, Plan_Hash=None), GOOD_PAYLOAD, "Inferedge-Plan-Hash: missing"),
        (changed(GOOD_HEADERS, Dtype=None), GOOD_PAYLOAD, "Inferedge-Dtype: missing"),
        (changed(GOOD_HEADERS, Shape=None), GOOD_PAYLOAD, "Inferedge-Shape: missing"),
        (changed(GOOD_HEADERS, Encoding=None), GOOD_PAYLOAD, "Inferedge-Encoding: missing"),
        (changed(GOOD_HEADERS, Version="2"), GOOD_PAYLOAD, "Inferedge-Version: '2': this worker"),
        (changed(GOOD_HEADERS, Colour="red"), GOOD_PAYLOAD, "Inferedge-Colour: unknown header"),
        (changed(GOOD_HEADERS, Dtype="float128"), GOOD_PAYLOAD, "Inferedge-Dtype: 'float128'"),
        (changed(GOOD_HEADERS, Dtype="object"), GOOD_PAYLOAD, "Inferedge-Dtype: 'object'"),
        (changed(GOOD_HEADERS, Dtype="int64"), GOOD_PAYLOAD, "needs 48 bytes, the payload has 24"),
        (changed(GOOD_HEADERS, Shape="[2,4]"), GOOD_PAYLOAD, "needs 32 bytes, the payload has 24"),
        (changed(GOOD_HEADERS, Shape="[]"), GOOD_PAYLOAD, "needs 4 bytes"),
        (changed(GOOD_HEADERS, Shape="[2,-3]"), GOOD_PAYLOAD, "dimensions cannot be negative"),
        (changed(GOOD_HEADERS, Shape="2,3"), GOOD_PAYLOAD, "expected [d0,d1,...] or []"),
        (changed(GOOD_HEADERS, Shape="[2,,3]"), GOOD_PAYLOAD, "expected [d0,d1,...]"),
        (changed(GOOD_HEADERS, Shape="[2.0,3]"), GOOD_PAYLOAD, "expected [d0,d1,...]"),
        (changed(GOOD_HEADERS, Shape="[" + "9" * 5000 + "]"), GOOD_PAYLOAD, "expected [d0"),
        (changed(GOOD_HEADERS, Shape="[" + ",".join("1" * 9) + "]"), GOOD_PAYLOAD, "9 dim"),
        (changed(GOOD_HEADERS, Shape="[٣,2]"), GOOD_PAYLOAD, "expected [d0,d1,...]"),
        (changed(GOOD_HEADERS, Encoding="zip"), GOOD_PAYLOAD, "Inferedge-Encoding: 'zip'"),
        (changed(GOOD_HEADERS, Request_Id="a b"), GOOD_PAYLOAD, "Inferedge-Request-Id: 'a b'"),
        (changed(GOOD_HEADERS, Plan_Hash="xyz"), GOOD_PAYLOAD, "Inferedge-Plan-Hash: 'xyz'"),
        (changed(GOOD_HEADERS, Scale="0.5"), GOOD_PAYLOAD, "Inferedge-Scale: only int8"),
        (changed(GOOD_HEADERS, Zero_Point="0"), GOOD_PAYLOAD, "Inferedge-Zero-Point: only int8"),
        (GOOD_HEADERS, GOOD_PAYLOAD[:-1], "needs 24 bytes, the payload has 23"),
        (GOOD_HEADERS, GOOD_PAYLOAD + b"\0", "needs 24 bytes, the payload has 25"),
        (GOOD_HEADERS, b"", "needs 24 bytes, the payload has 0"),
        (changed(INT8_HEADERS, Scale=None), INT8_PAYLOAD, "Inferedge-Scale: missing header"),
        (changed(INT8_HEADERS, Zero_Point=None), INT8_PAYLOAD, "Inferedge-Zero-Point: missing"),
        (changed(INT8_HEADERS, Scale="0"), INT8_PAYLOAD, "Inferedge-Scale: '0': expected a finite"),
        (changed(INT8_HEADERS, Scale="-1"), INT8_PAYLOAD, "Inferedge-Scale: '-1'"),
        (changed(INT8_HEADERS, Scale="nan"), INT8_PAYLOAD, "Inferedge-Scale: 'nan'"),
        (changed(INT8_HEADERS, Scale="inf"), INT8_PAYLOAD, "Inferedge-Scale: 'inf'"),
        (changed(INT8_HEADERS, Scale="abc"), INT8_PAYLOAD, "Inferedge-Scale: 'abc'"),
        (changed(INT8_HEADERS, Zero_Point="128"), INT8_PAYLOAD, "Inferedge-Zero-Point: '128'"),
        (changed(INT8_HEADERS, Zero_Point="1.5"), INT8_PAYLOAD, "Inferedge-Zero-Point: '1.5'"),
        (changed(INT8_HEADERS, Dtype="int32"), INT8_PAYLOAD, "int8 needs a float Inferedge-Dtype"),
        (changed(INT8_HEADERS, Encoding="fp16"), INT8_PAYLOAD, "Inferedge-Scale: only int8"),
    ],
)
def test_decode_names_the_bad_header_in_one_line(
    headers: dict[str, str] | None, payload: bytes, problem: str
) -> None:
    with pytest.raises(WireError) as caught:
        decode(headers, payload)
    message = str(caught.value)
    assert problem in message
    assert "\n" not in message
    assert len(message) < 300


def test_a_hostile_header_value_is_cut_short_in_the_error() -> None:
    with pytest.raises(WireError) as caught:
        decode(changed(GOOD_HEADERS, Dtype="x" * 5000), GOOD_PAYLOAD)
    assert len(str(caught.value)) < 300
