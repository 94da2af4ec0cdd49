"""A site served as a pipeline over its boards (`SiteConfig.stages`): the dispatcher's side.

Each request is decoded here (the same OIP v2 request an edge takes), then its batch goes
through the stages in turn: to a replica of the first stage's pool, whose reply answers the
rows an exit took and carries the activation of the rest, which go on to a replica of the next
stage's pool, and so on until the last stage (which ends at the final classifier) answers
what is left. The answers are encoded as an edge's would be.

The dispatcher carries every activation from one stage to the next rather than letting a
replica forward it: the site's retries (a replica that dies, is busy or goes silent), its
liveness and its metrics then stay in one place (`Site.send_in_pool`), at the cost of one more
trip through the broker per hop. A stage that answers with anything but a valid reply fails
the request with a 502 naming the stage; one that no replica could take in time, a 503.
"""

from __future__ import annotations

import time
import uuid

import numpy as np

from inferedge.api.site import SiteStage
from inferedge.runtime.compute import ms
from inferedge.runtime.decoding import Decoder
from inferedge.runtime.dispatcher import Forwarded, Site
from inferedge.runtime.edge_inference import INPUT_NAME
from inferedge.runtime.messages import Answer
from inferedge.runtime.oip import ErrorResponse
from inferedge.runtime.oip_codec import InputSpec, encode_response
from inferedge.runtime.stage_wire import read_stage_reply, stage_request
from inferedge.transport.errors import WireError


def _failed(status: int, message: str) -> Forwarded:
    return Forwarded(status, ErrorResponse(error=message).model_dump_json().encode())


class PipelineSite:
    """Forwards each request through the stages of `site`'s pipeline."""

    def __init__(self, site: Site, decoder: Decoder) -> None:
        stages, plan = site.config.stages, site.config.stage_plan
        if stages is None or plan is None:
            raise ValueError("a pipeline site needs stages and their plan")
        self.site = site
        self.stages: tuple[SiteStage, ...] = stages
        self.plan_hash = plan
        self._decoder = decoder
        self._spec = InputSpec(INPUT_NAME, tuple(site.config.input_shape))

    async def forward(self, body: bytes | bytearray, header: str | None) -> Forwarded:
        """Answer one OIP v2 request through every stage it needs; Refused for a bad one."""
        started = time.perf_counter()
        decoded = await self._decoder.decode(body, header, self._spec)
        rows = list(range(decoded.batch.shape[0]))
        activation: np.ndarray = decoded.batch
        answers: list[Answer | None] = [None] * len(rows)
        compute_ms = 0.0
        for i, stage in enumerate(self.stages):
            name = f"stage {i} (pool {stage.pool}, cuts {stage.start}:{stage.end})"
            headers, payload = stage_request(
                activation, plan_hash=self.plan_hash, start=stage.start,
                request_id=uuid.uuid4().hex,
            )  # fmt: skip
            reply = await self.site.send_in_pool(stage.pool, headers, payload)
            if reply is None:
                self.site.metrics.answered("none", 503)
                return _failed(503, f"{name}: no replica could take the request in time")
            if reply.status != 200:
                self.site.metrics.answered("none", 502)
                return _failed(502, f"{name} answered {reply.status}: {reply.payload[:200]!r}")
            try:
                said, activation = read_stage_reply(reply.headers, reply.payload, len(rows))
            except WireError as exc:
                self.site.metrics.answered("none", 502)
                return _failed(502, f"{name}: {exc}")
            compute_ms += said.compute_ms
            going_on = []
            for row, result in zip(rows, said.rows, strict=True):
                if result is None:
                    going_on.append(row)
                    continue
                answers[row] = Answer(
                    prediction=result.prediction,
                    confidence=result.confidence,
                    exit_index=result.exit_index,
                    cut_index=result.cut_index,
                    location="edge",
                    plan_hash=said.plan_hash,
                    timings={
                        "edge_compute_ms": compute_ms,
                        "total_ms": ms(time.perf_counter() - started),
                    },
                )
            rows = going_on
            if not rows:
                break
        done = [a for a in answers if a is not None]
        if len(done) != len(answers):
            return _failed(502, f"the last stage left {len(rows)} rows unanswered")
        payload, json_length = encode_response(
            self.site.config.pipeline, self.plan_hash, done, decoded.request
        )
        return Forwarded(200, payload, json_length)
