"""An edge replica in a site's pool: requests from the dispatcher over NATS, and heartbeats.

A site's dispatcher (`runtime.dispatcher`) sends each request to one replica, on the replica's
own subject (`P.infer.<pool>.<replica>`), as the raw OIP v2 body with its binary-extension
header; the replica answers it exactly as an HTTP request (`runtime.edge_inference`) and puts
the HTTP status the answer stands for in `Inferedge-Status`. A 4xx goes back to the client; a
503 (busy, not loaded) lets the dispatcher try another replica. A replica that is one stage of
a pipeline over the pools takes activations instead (`runtime.stage_member`); the accounting
and the heartbeats are the same.

Every `interval_s` the replica sends a heartbeat to `P.beat`: what it holds now and, as
counters since it started, how many requests it answered and how long it held at least one.
The dispatcher learns from them which replicas are alive and how fast each really serves; a
beat nobody takes (no dispatcher yet) is dropped, since the next one carries the same counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from inferedge.api.site import Heartbeat
from inferedge.runtime.edge_inference import EdgeInference, Unavailable
from inferedge.runtime.oip import INFERENCE_HEADER, ErrorResponse
from inferedge.runtime.oip_codec import Refused
from inferedge.transport.client import Messenger, Service
from inferedge.transport.codec import Payload
from inferedge.transport.errors import TransportError
from inferedge.transport.headers import ANSWER_STATUS
from inferedge.transport.subjects import replica_subject, subject

log = logging.getLogger(__name__)


Answerer = Callable[[Mapping[str, str], Payload], Awaitable[tuple[dict[str, str], bytes]]]
"""Answers one request off the replica's subject: reply headers (`Inferedge-Status` among
them) and body. OIP requests (`oip_answerer`), or a pipeline's stage (`runtime.stage_member`)."""


def error_reply(status: int, message: str) -> tuple[dict[str, str], bytes]:
    """A reply standing for an HTTP error: its status and an OIP error body."""
    return {ANSWER_STATUS: str(status)}, ErrorResponse(error=message).model_dump_json().encode()


def oip_answerer(inference: EdgeInference, subject: str) -> Answerer:
    """Answers raw OIP v2 infer bodies as the edge's HTTP path does (`runtime.edge_inference`)."""

    async def answer(headers: Mapping[str, str], payload: Payload) -> tuple[dict[str, str], bytes]:
        try:
            partition = inference.partition()
            encoded = await inference.answer(
                partition, bytes(payload), headers.get(INFERENCE_HEADER), time.perf_counter()
            )
        except Refused as exc:
            inference.edge.metrics.refused(exc.reason, f"{subject}: {exc}")
            return error_reply(exc.status, str(exc))
        except Unavailable as exc:
            return error_reply(503, str(exc))
        out = {ANSWER_STATUS: "200"}
        if encoded.json_length is not None:
            out[INFERENCE_HEADER] = str(encoded.json_length)
        return out, encoded.payload

    return answer


class PoolMember:
    """Serves one replica's subject and sends its heartbeats until `aclose`."""

    def __init__(
        self,
        messenger: Messenger,
        answer: Answerer,
        plan_hash: Callable[[], str | None],
        *,
        namespace: str,
        pipeline: str,
        pool: str,
        replica: str,
        interval_s: float = 0.5,
        max_in_flight: int = 64,
    ) -> None:
        self.subject = replica_subject(namespace, pipeline, pool, replica)
        self._beats = subject(namespace, pipeline, "beat")
        self._messenger = messenger
        self._answer = answer
        self._plan_hash = plan_hash
        self._pool, self._replica = pool, replica
        self._interval_s = interval_s
        self._max_in_flight = max_in_flight
        self.in_flight = 0
        self.answered = 0
        self._busy_s = 0.0
        self._busy_since = 0.0
        self._service: Service | None = None
        self._beating: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take requests on this replica's subject and start the heartbeats."""
        self._service = await self._messenger.serve(
            self.subject,
            None,
            self.handle,
            concurrency=self._max_in_flight,
            max_in_flight=self._max_in_flight,
            refuse_when_full=True,
        )
        self._beating = asyncio.create_task(self._beat_forever(), name="inferedge-heartbeat")

    def busy_s(self) -> float:
        """Seconds this replica held at least one request, the current stretch included."""
        held = time.perf_counter() - self._busy_since if self.in_flight else 0.0
        return self._busy_s + held

    def heartbeat(self) -> Heartbeat:
        """What the next heartbeat says."""
        return Heartbeat(
            pool=self._pool,
            replica=self._replica,
            plan_hash=self._plan_hash() or "0",
            in_flight=self.in_flight,
            answered=self.answered,
            busy_s=self.busy_s(),
            interval_s=self._interval_s,
        )

    async def handle(
        self, headers: Mapping[str, str], payload: Payload
    ) -> tuple[dict[str, str], bytes]:
        """One request from the dispatcher: the answer, or an error body with its status."""
        started = time.perf_counter()
        if self.in_flight == 0:
            self._busy_since = started
        self.in_flight += 1
        try:
            out, body = await self._answer(headers, payload)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._busy_s += time.perf_counter() - self._busy_since
        if out.get(ANSWER_STATUS) == "200":
            self.answered += 1
        return out, body

    async def _beat_forever(self) -> None:
        while True:
            beat = self.heartbeat().model_dump_json(by_alias=True).encode()
            try:
                await self._messenger.request(self._beats, {}, beat, timeout=self._interval_s)
            except TransportError as exc:  # no dispatcher yet, or the broker is away
                log.debug("heartbeat not taken: %s", exc)
            await asyncio.sleep(self._interval_s)

    async def aclose(self) -> None:
        """Stop the heartbeats, then answer what is in flight and stop taking requests."""
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
        if self._service is not None:
            await self._service.stop()
