"""Level-triggered reconciliation: one run per object at a time, nudges coalesced, backoff.

Watch events only *nudge* an object; the reconcile function reads the latest state itself. So
ten events during one run cause one more run, not ten, and a run never works on a stale event.
A run that raises, or asks for a retry, runs again after an exponential backoff; a successful
run resets it. The run's `Outcome` tells the loop what to do next, so a reconcile function
needs no handle on the loop that runs it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)


class Outcome(Enum):
    """How a reconcile ended, and so what the loop does next."""

    DONE = "done"  # wait for the next nudge
    RETRY = "retry"  # a retried failure: run again after the backoff
    AGAIN = "again"  # it changed something no watch reports (the store, a ConfigMap): run now
    GONE = "gone"  # the object no longer exists: drop its backoff state


@dataclass
class _State:
    task: asyncio.Task[None] | None = None
    dirty: bool = False
    failures: int = 0
    timer: asyncio.TimerHandle | None = None


@dataclass
class Reconciler(Generic[Key]):
    """Run `reconcile(key)` whenever `nudge(key)` is called, serialised per key."""

    name: str
    reconcile: Callable[[Key], Awaitable[Outcome]]
    logger: logging.Logger
    base_delay: float = 1.0
    max_delay: float = 60.0
    _states: dict[Key, _State] = field(default_factory=dict)
    _closed: bool = False

    def nudge(self, key: Key) -> None:
        """Reconcile `key` soon: now if idle, right after the current run otherwise."""
        if self._closed:
            return
        state = self._states.setdefault(key, _State())
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if state.task is not None and not state.task.done():
            state.dirty = True
            return
        state.task = asyncio.get_running_loop().create_task(
            self._run(key, state), name=f"{self.name} {key}"
        )

    def _forget(self, key: Key) -> None:
        state = self._states.pop(key, None)
        if state is not None and state.timer is not None:
            state.timer.cancel()

    async def close(self) -> None:
        """Cancel timers and running reconciles (operator shutdown)."""
        self._closed = True
        tasks = []
        for state in self._states.values():
            if state.timer is not None:
                state.timer.cancel()
            if state.task is not None and not state.task.done():
                state.task.cancel()
                tasks.append(state.task)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, key: Key, state: _State) -> None:
        while True:
            state.dirty = False
            try:
                outcome = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.logger.exception(
                    "%s %s: reconcile failed; retrying with backoff", self.name, key
                )
                outcome = Outcome.RETRY
            if state.dirty or outcome is Outcome.AGAIN:
                continue
            if outcome is Outcome.GONE:
                self._forget(key)
            elif outcome is Outcome.RETRY:
                state.failures += 1
                delay = min(self.base_delay * 2 ** (state.failures - 1), self.max_delay)
                loop = asyncio.get_running_loop()
                state.timer = loop.call_later(delay, self.nudge, key)
            else:
                state.failures = 0
            return
