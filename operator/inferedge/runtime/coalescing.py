"""The edge's side of batching: concurrent offloads travel to the cloud together.

Every offload message costs the edge and the cloud a fixed amount of Python work (encoding,
NATS framing and headers, decoding, a reply), about a millisecond each side. The cloud's
batcher groups offloads into batches, but it cannot save that per-message cost, which on a
small cloud part is as large as the compute. So the edge keeps at most `max_in_flight` offload
messages on the wire; offloads that arrive while that many are out wait, and leave together
as one message (up to `max_rows` rows) once one comes back. The answered callers usually offload
again at once, so a freed slot is held for `linger_ms` to let them join the next message
instead of the first of them leaving alone. At low load nothing waits: an offload with a free
slot and no linger leaves at once.

A message is also kept within the cloud's batch limit, which every answer states
(`CloudAnswer.max_batch_size`). The cloud runs a larger message in pieces and answers it only
after the last, so one message of two batches leaves the cloud idle while its answer travels
back and its callers offload again; two messages of one batch each keep it busy, the second
computing while the first's callers come back.

A group shares one message, so it shares its plan, its threshold and its budget: offloads are
grouped only with others of the same plan and threshold, and the message carries the least
budget left among them. Each caller gets its own rows of the answer, or the group's error.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from inferedge.runtime.messages import CloudAnswer, Offload, OffloadContext


@dataclass(eq=False)
class _Waiting:
    activation: np.ndarray
    context: OffloadContext
    queued_at: float = field(default_factory=time.perf_counter)
    answer: asyncio.Future[CloudAnswer] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Coalescer:
    """An `Offload` (call it) that sends concurrent offloads of `offload` as shared messages."""

    def __init__(
        self,
        offload: Offload,
        *,
        max_in_flight: int = 2,
        max_rows: int = 256,
        linger_ms: float = 1.0,
    ) -> None:
        if max_in_flight < 1 or max_rows < 1 or linger_ms < 0:
            raise ValueError("max_in_flight and max_rows must be at least 1, linger_ms >= 0")
        self._offload = offload
        self._max_in_flight = max_in_flight
        self._max_rows = max_rows
        self._cloud_batch: int | None = None  # the cloud's batch limit, from its last answer
        self._linger_s = linger_ms / 1000
        self._lingering = False
        self._in_flight = 0
        self._waiting: list[_Waiting] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        waiting = _Waiting(activation, context)
        # A caller that gave up leaves its group's error unread; reading it here keeps asyncio
        # from reporting it as lost.
        waiting.answer.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.append(waiting)
        self._dispatch()
        # A caller that stops waiting (its own timeout) leaves its group to finish for the rest.
        return await asyncio.shield(waiting.answer)

    def _release(self) -> None:
        self._in_flight -= 1
        if not self._waiting and not self._linger_s:
            return
        self._lingering = True
        asyncio.get_running_loop().call_later(self._linger_s, self._end_linger)

    def _end_linger(self) -> None:
        self._lingering = False
        self._dispatch()

    def _dispatch(self) -> None:
        while self._waiting and self._in_flight < self._max_in_flight and not self._lingering:
            group = self._take_group()
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take_group(self) -> list[_Waiting]:
        """The oldest waiting offload and those that may share its message, in order."""
        first = self._waiting[0]
        key = (first.context.plan_hash, first.context.threshold)
        group: list[_Waiting] = []
        rest: list[_Waiting] = []
        rows = 0
        limit = min(self._max_rows, self._cloud_batch or self._max_rows)
        for waiting in self._waiting:
            same = (waiting.context.plan_hash, waiting.context.threshold) == key
            fits = rows + len(waiting.activation) <= limit or not group
            if same and fits:
                group.append(waiting)
                rows += len(waiting.activation)
            else:
                rest.append(waiting)
        self._waiting = rest
        return group

    async def _send(self, group: list[_Waiting]) -> None:
        try:
            now = time.perf_counter()
            budget = min(w.context.timeout_s - (now - w.queued_at) for w in group)
            first = group[0].context
            context = first.model_copy(update={"timeout_s": max(budget, 0.001)})
            batch = (
                group[0].activation
                if len(group) == 1
                else np.concatenate([w.activation for w in group])
            )
            try:
                answer = await self._offload(batch, context)
            except Exception as exc:  # every caller of the group learns why
                for waiting in group:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(exc)
                return
            self._cloud_batch = answer.max_batch_size
            _share(answer, group)
        finally:
            self._release()


def _share(answer: CloudAnswer, group: list[_Waiting]) -> None:
    """Each caller's rows of the group's answer, in the order they were sent."""
    total = sum(len(w.activation) for w in group)
    if len(answer.rows) != total:
        wrong = ValueError(f"the cloud answered {len(answer.rows)} rows for {total} offloaded")
        for waiting in group:
            if not waiting.answer.done():
                waiting.answer.set_exception(wrong)
        return
    start = 0
    for waiting in group:
        end = start + len(waiting.activation)
        if not waiting.answer.done():
            waiting.answer.set_result(answer.model_copy(update={"rows": answer.rows[start:end]}))
        start = end
