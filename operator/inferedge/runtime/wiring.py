"""The dataplanes over NATS: the edge's offload call and the cloud's offload worker.

The edge sends the split activation with the wire codec; the cloud answers with its
`CloudAnswer` as JSON. Transport failures are mapped onto what the edge dataplane already knows
how to degrade on: a timeout, an unreachable cloud (`ConnectionError`), a plan-hash refusal
(`PlanMismatch`), a cloud without a partition yet (`NotReady`) or a full one (`CloudBusy`).

Every offload carries the edge's remaining budget in milliseconds (`Inferedge-Extra-budget-ms`),
not an absolute deadline: the cloud adds it to the offload's arrival on its own clock, so the
hosts' clocks need not agree, and drops the offload unanswered-by-compute once it has passed.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping

import numpy as np

from inferedge.core.manifest import ManifestError, parse_set_prefix
from inferedge.core.operating_space import OperatingPoint
from inferedge.core.point_text import parse_point, point_text
from inferedge.core.roles import Role
from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.errors import CloudBusy, DeadlineExpired, NotReady, PlanMismatch
from inferedge.runtime.messages import PROBE_KINDS, CloudAnswer, Offload, OffloadContext
from inferedge.runtime.partition import Partition
from inferedge.runtime.policy import deadline_from_budget
from inferedge.transport.client import Handler, Messenger
from inferedge.transport.codec import EXTRA_PREFIX, Encoding, Payload, decode, encode
from inferedge.transport.control import ReloadAck, parse_reload
from inferedge.transport.errors import RemoteError, RequestTimeout, TransportError, WireError
from inferedge.transport.service import received_at

THRESHOLD = "threshold"  # wire extra: the edge's c_thr, for the cloud's own exits
BUDGET = "budget-ms"  # wire extra: milliseconds the edge still waits, from when it sent
POINT = "point"  # wire extra: the operating point split at, `split/edge exits/cloud exits`
PROBE = "probe"  # wire extra: a link probe's kind; the cloud answers it at once
# A bandwidth probe is sized for a few tens of ms on the link; this bounds what a cloud accepts.
MAX_PROBE_BYTES = 1 << 20
# Error replies that mean "the cloud is full": its admission bound, its in-flight bound, its
# chunk reassembly budget (the transport's BusyError).
_BUSY = ("CloudBusy:", "BusyError:")


def nats_offload(messenger: Messenger, subject: str, encoding: Encoding = "raw") -> Offload:
    """An `Offload` that sends pending activations to the cloud workers on `subject`."""

    async def offload(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        extra = {THRESHOLD: repr(context.threshold), BUDGET: f"{context.timeout_s * 1000:.1f}"}
        if context.point is not None:
            extra[POINT] = point_text(context.point)
        if context.probe is not None:
            extra[PROBE] = context.probe
        headers, payload = encode(
            activation,
            request_id=uuid.uuid4().hex,
            plan_hash=context.plan_hash,
            encoding=encoding,
            extra=extra,
        )
        try:
            _, reply = await messenger.request(subject, headers, payload, timeout=context.timeout_s)
        except RequestTimeout as exc:
            raise TimeoutError(str(exc)) from exc
        except RemoteError as exc:
            # The worker's one-line error starts with the exception's type name.
            text = str(exc)
            if "PlanMismatch:" in text:
                raise PlanMismatch(text) from exc
            if "NotReady:" in text:
                raise NotReady(text) from exc
            if any(busy in text for busy in _BUSY):
                raise CloudBusy(text) from exc
            if "DeadlineExpired:" in text:
                raise TimeoutError(text) from exc
            raise
        except TransportError as exc:  # no responders, a lost connection
            raise ConnectionError(str(exc)) from exc
        return CloudAnswer.model_validate_json(bytes(reply))

    return offload


def _point(extra: Mapping[str, str], threshold: float | None) -> OperatingPoint | None:
    """The header's operating point, None when absent; WireError names the header."""
    text = extra.get(POINT)
    if text is None:
        return None
    try:
        return parse_point(text, 0.0 if threshold is None else threshold)
    except ValueError as exc:
        raise WireError(f"{EXTRA_PREFIX}{POINT}: {exc}") from None


def _threshold(extra: Mapping[str, str]) -> float | None:
    return _non_negative(extra, THRESHOLD, "a number")


def _budget_ms(extra: Mapping[str, str]) -> float | None:
    # None: an older edge, which sends no deadline.
    return _non_negative(extra, BUDGET, "milliseconds")


def _non_negative(extra: Mapping[str, str], key: str, what: str) -> float | None:
    """The header's finite number >= 0, None when absent; WireError names the header."""
    if key not in extra:
        return None
    try:
        value = float(extra[key])
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise WireError(f"{EXTRA_PREFIX}{key}: expected {what} >= 0, got {extra[key]!r}")
    return value


def cloud_worker(dataplane: CloudDataplane) -> Handler:
    """A `Messenger.serve` handler that answers offloads with `dataplane`.

    The offload's deadline is its arrival (`received_at`, this host's clock) plus the budget
    the edge sent. Any error (a malformed message, a plan mismatch, a full cloud, a passed
    deadline) propagates to `serve`, which replies with it as a one-line error and keeps
    serving.
    """

    async def handle(headers: Mapping[str, str], payload: Payload) -> tuple[dict[str, str], bytes]:
        arrived = received_at()
        array, meta = decode(headers, payload)
        if PROBE in meta.extra:
            return {}, _probe_answer(dataplane, meta.extra[PROBE], array.nbytes)
        deadline = deadline_from_budget(
            time.monotonic() if arrived is None else arrived, _budget_ms(meta.extra)
        )
        if deadline is not None and time.monotonic() >= deadline:
            dataplane.metrics.shed.labels(reason="expired").inc()
            raise DeadlineExpired("the offload's budget was spent before it was decoded")
        # Decoded views of the message are read-only; torch wants memory it may write.
        threshold = _threshold(meta.extra)
        answer = await dataplane.handle(
            np.array(array), meta.plan_hash, threshold, deadline, _point(meta.extra, threshold)
        )
        return {}, answer.model_dump_json().encode()

    return handle


def _probe_answer(dataplane: CloudDataplane, kind: str, nbytes: int) -> bytes:
    """The cloud's answer to a link probe: at once, computing nothing."""
    if kind not in PROBE_KINDS:
        raise WireError(f"{EXTRA_PREFIX}{PROBE}: expected one of {', '.join(PROBE_KINDS)}, "
                        f"got {kind[:32]!r}")  # fmt: skip
    if nbytes > MAX_PROBE_BYTES:
        raise WireError(f"a link probe carries at most {MAX_PROBE_BYTES} bytes, got {nbytes}")
    served = dataplane.partition
    answer = CloudAnswer(
        plan_hash=served.plan_hash if served is not None else "",
        rows=(),
        queue_ms=0.0,
        compute_ms=0.0,
        batch_size=1,
    )
    return answer.model_dump_json().encode()


def reload_worker(
    dataplane: EdgeDataplane | CloudDataplane,
    role: Role,
    prefix_base: str,
    load: Callable[[str], Awaitable[Partition]],
) -> Handler:
    """A `Messenger.serve` handler that applies reload commands to `dataplane`.

    A new prefix is loaded (verified) before it is swapped in, so a bad artifact set leaves the
    server on its old plan and the publisher gets the error. `prefix_base` is this pipeline's
    `<namespace>/<pipeline>`: a server never switches to another pipeline's artifacts.
    """

    async def handle(_: Mapping[str, str], payload: Payload) -> tuple[dict[str, str], bytes]:
        command = parse_reload(bytes(payload))
        if command.role != role:
            raise WireError(f"reload command for the {command.role} servers reached the {role}")
        serving = dataplane.partition
        if role == "edge" and serving is not None and serving.point is not None:
            # Its adapter moves it between the points of the set it started with, each with
            # its own c_thr: another set or a fixed c_thr would be undone at the next move.
            raise WireError(
                f"this edge serves the operating space of plan {serving.plan_hash} and picks "
                "its points and c_thr itself; roll out another set by restarting it"
            )
        if command.prefix is not None:
            try:
                where = parse_set_prefix(command.prefix)
            except ManifestError as exc:
                raise WireError(f"reload: {exc}") from None
            if f"{where.namespace}/{where.pipeline}" != prefix_base:
                raise WireError(
                    f"reload prefix {command.prefix!r}: expected {prefix_base}/<plan-hash>/<set-id>"
                )
            current = dataplane.partition
            if current is None or current.prefix != str(where):
                dataplane.swap(await load(str(where)))
        if command.threshold is not None:
            dataplane.set_threshold(command.threshold)
        served = dataplane.partition
        ack = ReloadAck(
            role=role,
            plan_hash=served.plan_hash if served is not None else "",
            threshold=dataplane.threshold,
        )
        return {}, ack.model_dump_json().encode()

    return handle
