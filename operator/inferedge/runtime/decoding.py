"""Request decoding off the event loop, so a large body never stalls health checks.

Parsing JSON and building arrays hold the GIL for as long as one call runs (a 50 MB body
parses in about 0.2 s), so a thread alone would still stall the event loop that long. Bodies
whose JSON is small go to a thread (cheap, no copy); larger JSON goes to a worker process,
started on first use. Binary tensors (the binary data extension) need no parsing: their JSON
header is small, and copying their bytes releases the GIL, so they always take the thread.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial

from inferedge.runtime.oip_codec import (
    Decoded,
    InputSpec,
    Limits,
    Refused,
    decode_infer,
)

log = logging.getLogger(__name__)

DecodeFn = Callable[[bytes | bytearray, str | None, InputSpec, Limits], Decoded]
"""`decode_infer`'s signature; must be a module-level function (it is pickled)."""


class Decoder:
    """Runs `decode` in a thread or, for JSON over `limits.process_decode_bytes`, a process."""

    def __init__(
        self, limits: Limits, *, decode: DecodeFn = decode_infer, process_workers: int = 1
    ) -> None:
        self.limits = limits
        self._decode = decode
        self._workers = process_workers
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="inferedge-decode")
        self._processes: ProcessPoolExecutor | None = None

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._processes is None:
            # spawn: the server process runs torch and event-loop threads, which fork copies
            # in an undefined state.
            self._processes = ProcessPoolExecutor(
                max_workers=self._workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._processes

    async def decode(self, body: bytes | bytearray, header: str | None, spec: InputSpec) -> Decoded:
        """The request in `body` (its Inference-Header-Content-Length is `header`) decoded.

        Raises `Refused` for a bad request, and a 503 `Refused` when the worker process died
        (the next large request starts a new one).
        """
        json_bytes = len(body)
        if header is not None and header.strip().isdigit():
            json_bytes = min(int(header), len(body))
        executor: Executor = self._threads
        if json_bytes > self.limits.process_decode_bytes:
            executor = self._process_pool()
        call = partial(self._decode, body, header, spec, self.limits)
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, call)
        except BrokenProcessPool:
            log.warning("the decoding process died; starting another on the next large body")
            self._processes = None
            raise Refused(503, "decoder_died", "the decoding process died; retry") from None

    async def aclose(self) -> None:
        """Stop both executors; decodes still queued are cancelled."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            self._processes.shutdown(wait=False, cancel_futures=True)
            self._processes = None
