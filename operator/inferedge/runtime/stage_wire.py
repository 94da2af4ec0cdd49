"""The messages of a pipeline over boards: an activation into a stage; answers and the rest out.

A site served as a pipeline (`SiteConfig.stages`) sends every request through its stages in
turn; the dispatcher carries each activation from one stage's replica to the next one's, so
retries, liveness and timing stay in one place (`runtime.site_pipeline`).

- Request, on the replica's own subject: the activation at the stage's first cut in the
  activation wire format (`transport.codec`), with the plan hash of the set and the extra
  `stage-start` (the cut the activation is at, which must be the replica's).
- Reply: `Inferedge-Status` (the HTTP status it stands for). On 200, the codec's headers
  describe the activation of the rows no exit answered, at the stage's last cut (0 rows when
  every row was answered), and the extra `answers-length` gives how many bytes of the payload
  are the answers' JSON (`StageAnswers`, one entry per row sent, None for a row going on);
  the tensor's bytes follow. Otherwise the payload is an `ErrorResponse`.

Every part is validated on receipt: rows, shapes and byte counts must agree, so a replica or
a dispatcher that sends something else gets an error, never a wrong answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inferedge.core.errors import describe_validation_error
from inferedge.runtime.partition import RowResult
from inferedge.transport.codec import EXTRA_PREFIX, Payload, decode, encode
from inferedge.transport.errors import WireError
from inferedge.transport.headers import ANSWER_STATUS

START: Final = "stage-start"  # wire extra: the cut the activation into a stage is at
ANSWERS_LENGTH: Final = "answers-length"  # wire extra: bytes of answers' JSON before the tensor
MAX_ANSWERS_BYTES: Final = 16 << 20


class StageAnswers(BaseModel):
    """What one stage made of the rows it was sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plan_hash: str = Field(pattern=r"^[0-9a-f]{8,64}$")
    rows: tuple[RowResult | None, ...] = Field(
        description="Per row sent: its answer, or None when it goes on to the next stage."
    )
    compute_ms: float = Field(ge=0.0, description="The stage's model calls, emulation included.")


def stage_request(
    activation: np.ndarray, *, plan_hash: str, start: int, request_id: str
) -> tuple[dict[str, str], bytes]:
    """The message that sends `activation` (rows at cut `start`) into a stage."""
    headers, payload = encode(
        activation, request_id=request_id, plan_hash=plan_hash, extra={START: str(start)}
    )
    return headers, bytes(payload)


@dataclass(frozen=True)
class StageInput:
    """A stage request as received."""

    activation: np.ndarray
    plan_hash: str
    start: int
    request_id: str


def read_stage_request(headers: Mapping[str, str], payload: Payload) -> StageInput:
    """A stage request, validated; WireError names the fault."""
    array, meta = decode(headers, payload)
    start = meta.extra.get(START, "")
    if not start.isdigit():
        raise WireError(f"extra {START}: expected the cut the activation is at, got {start[:16]!r}")
    if array.dtype != np.float32 or array.ndim < 2 or array.shape[0] < 1:
        raise WireError(
            f"a stage takes float32 rows of activations, got {array.dtype} {list(array.shape)}"
        )
    return StageInput(array, meta.plan_hash, int(start), meta.request_id)


def stage_reply(
    answers: StageAnswers, pending: np.ndarray, *, request_id: str
) -> tuple[dict[str, str], bytes]:
    """A stage's 200 reply: its answers, then the activation of the rows going on."""
    text = answers.model_dump_json().encode()
    headers, tensor = encode(
        np.ascontiguousarray(pending, dtype=np.float32),
        request_id=request_id,
        plan_hash=answers.plan_hash,
        extra={ANSWERS_LENGTH: str(len(text))},
    )
    return {**headers, ANSWER_STATUS: "200"}, text + bytes(tensor)


def read_stage_reply(
    headers: Mapping[str, str], payload: Payload, rows: int
) -> tuple[StageAnswers, np.ndarray]:
    """The answers and the activation going on from a stage's 200 reply to `rows` rows sent;
    WireError when they do not fit each other or what was sent."""
    wire = {k: v for k, v in headers.items() if k != ANSWER_STATUS}
    length_text = wire.get(EXTRA_PREFIX + ANSWERS_LENGTH, "")
    if not length_text.isdigit() or int(length_text) > min(len(payload), MAX_ANSWERS_BYTES):
        raise WireError(f"extra {ANSWERS_LENGTH}: {length_text[:16]!r} does not fit the payload")
    length = int(length_text)
    data = memoryview(payload)
    try:
        answers = StageAnswers.model_validate_json(bytes(data[:length]))
    except ValidationError as exc:
        raise WireError(describe_validation_error(exc, "stage answers")) from None
    pending, meta = decode(wire, data[length:])
    going_on = sum(1 for row in answers.rows if row is None)
    if len(answers.rows) != rows or pending.shape[:1] != (going_on,):
        raise WireError(
            f"a stage answered {len(answers.rows)} rows of {rows} sent, with "
            f"{pending.shape[0] if pending.ndim else 0} activations for the {going_on} going on"
        )
    if meta.plan_hash != answers.plan_hash:
        raise WireError("the stage's answers and activation name different plans")
    return answers, pending
