"""A replica that is one stage of a pipeline over a site's pools (`serve edge --stage A:B`).

It runs its edge part's steps from cut A to cut B on each activation the dispatcher sends
(`runtime.stage_wire`), testing the exits on the way at the served c_thr, and replies with an
answer for every row an exit took and the activation at B of the rest. Its model calls run on
the edge's own compute thread, one at a time with anything else the board computes, with the
edge's emulated slowdown. A row no classifier could answer with finite numbers is
answered with prediction -1 and confidence 0, as the edge answers it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial

import numpy as np

from inferedge.runtime.dataplane import NO_PREDICTION, EdgeDataplane
from inferedge.runtime.errors import NotReady
from inferedge.runtime.partition import PartitionError, RowResult
from inferedge.runtime.pool_member import Answerer, error_reply
from inferedge.runtime.stage_wire import StageAnswers, read_stage_request, stage_reply
from inferedge.transport.codec import Payload
from inferedge.transport.errors import WireError


def _finite(row: RowResult | None) -> RowResult | None:
    if row is None or math.isfinite(row.confidence):
        return row
    return RowResult(NO_PREDICTION, 0.0, row.exit_index, row.cut_index)


def stage_answerer(dataplane: EdgeDataplane, start: int, end: int) -> Answerer:
    """Answers stage requests for cuts `start` to `end` of `dataplane`'s partition; the
    partition served when it is built must have those cuts as step boundaries."""
    if dataplane.partition is not None:
        dataplane.partition.stage_steps(start, end)

    async def answer(headers: Mapping[str, str], payload: Payload) -> tuple[dict[str, str], bytes]:
        partition = dataplane.partition
        if partition is None:
            return error_reply(503, "the stage's model is not loaded yet")
        try:
            sent = read_stage_request(headers, payload)
        except WireError as exc:
            return error_reply(400, f"stage request: {exc}")
        if sent.plan_hash != partition.plan_hash:
            return error_reply(
                409, f"stage request is for plan {sent.plan_hash}, this replica serves "
                f"{partition.plan_hash}",
            )  # fmt: skip
        if sent.start != start:
            return error_reply(
                400, f"stage request starts at cut {sent.start}, this stage at cut {start}"
            )
        run = partial(
            partition.run_stage,
            np.array(sent.activation),  # a decoded view is read-only; torch wants to write
            dataplane.threshold,
            start,
            end,
            slowdown=dataplane.compute_slowdown,
        )
        try:
            outcome = await dataplane.compute(run)
        except PartitionError as exc:
            return error_reply(400, str(exc))
        except NotReady as exc:
            return error_reply(503, str(exc))
        answers = StageAnswers(
            plan_hash=partition.plan_hash,
            rows=tuple(_finite(row) for row in outcome.answers),
            compute_ms=outcome.compute_ms,
        )
        return stage_reply(answers, outcome.activation, request_id=sent.request_id)

    return answer
