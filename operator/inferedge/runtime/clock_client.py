"""The edge's side of the clock agent (`inferedge.runtime.clock_agent`).

The client keeps one connection to the agent open: the agent forgets a pipeline's wishes when
that connection closes, so a wish lives as long as the pod that made it (and its lease, which
every request renews). When the agent cannot be reached or refuses, `ClockAgentError` says so on
one line; the edge keeps serving at whatever clocks the node runs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import TracebackType

from pydantic import BaseModel, ValidationError

from inferedge.core.errors import InferedgeError, describe_validation_error, one_line
from inferedge.runtime.clock_agent import (
    DEFAULT_SOCKET,
    MAX_LINE,
    ClockReply,
    ReleaseRequest,
    WishRequest,
)


class ClockAgentError(InferedgeError):
    """The clock agent is unreachable, or refused a request; the clocks stay as they are."""


class ClockAgentClient:
    """Ask the node's clock agent for clocks, over its Unix socket at `path`."""

    def __init__(self, path: Path = DEFAULT_SOCKET, timeout_s: float = 5.0) -> None:
        """Nothing connects until the first request."""
        self.path = path
        self.timeout_s = timeout_s
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def request(
        self, pipeline: str, cpu_khz: int | None = None, gpu_khz: int | None = None
    ) -> ClockReply:
        """Wish for clocks (kHz; None: no wish for that kind) for `pipeline` (namespace/name),
        renewing its lease; the agent's reply says what was granted and what the node runs."""
        try:
            request = WishRequest(pipeline=pipeline, cpu_khz=cpu_khz, gpu_khz=gpu_khz)
        except ValidationError as exc:
            raise ClockAgentError(describe_validation_error(exc, "clock request")) from None
        return await self._ask(request)

    async def release(self, pipeline: str) -> ClockReply:
        """Withdraw `pipeline`'s wishes at once."""
        try:
            request = ReleaseRequest(pipeline=pipeline, release=True)
        except ValidationError as exc:
            raise ClockAgentError(describe_validation_error(exc, "clock release")) from None
        return await self._ask(request)

    async def close(self) -> None:
        """Close the connection: the agent forgets this client's wishes."""
        async with self._lock:
            self._drop()

    async def __aenter__(self) -> ClockAgentClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _ask(self, request: BaseModel) -> ClockReply:
        line = request.model_dump_json().encode() + b"\n"
        async with self._lock:
            try:
                answer = await self._round_trip(line)
            except BaseException:
                # Failed or cancelled mid-exchange: a late reply would answer the next request.
                self._drop()
                raise
        return _parse_reply(answer)

    async def _round_trip(self, line: bytes) -> bytes:
        reused = self._stream is not None
        try:
            return await asyncio.wait_for(self._exchange(line), self.timeout_s)
        except (OSError, EOFError, ValueError) as exc:
            if not reused:
                raise self._unreachable(exc) from None
        except TimeoutError as exc:
            raise self._unreachable(exc) from None
        # The agent restarted since the connection was opened: one new one, and the wish again.
        self._drop()
        try:
            return await asyncio.wait_for(self._exchange(line), self.timeout_s)
        except (OSError, EOFError, ValueError, TimeoutError) as exc:
            raise self._unreachable(exc) from None

    async def _exchange(self, line: bytes) -> bytes:
        if self._stream is None:
            self._stream = await asyncio.open_unix_connection(str(self.path), limit=MAX_LINE)
        reader, writer = self._stream
        writer.write(line)
        await writer.drain()
        answer = await reader.readline()
        if not answer.endswith(b"\n"):
            raise EOFError("the agent closed the connection")
        return answer

    def _drop(self) -> None:
        if self._stream is not None:
            self._stream[1].close()
            self._stream = None

    def _unreachable(self, exc: BaseException) -> ClockAgentError:
        why = "no answer in time" if isinstance(exc, TimeoutError) else one_line(exc)
        return ClockAgentError(f"clock agent at {self.path} unreachable: {why}")


def _parse_reply(answer: bytes) -> ClockReply:
    try:
        data = json.loads(answer)
        if isinstance(data, dict) and "error" in data:
            raise ClockAgentError(f"clock agent refused: {data['error']}")
        return ClockReply.model_validate(data)
    except (ValueError, ValidationError):
        raise ClockAgentError(f"clock agent: unreadable reply {answer[:200]!r}") from None
