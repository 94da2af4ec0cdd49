"""Running a coroutine so that Ctrl-C (or SIGTERM) always stops it, and then raises
KeyboardInterrupt for the caller's cleanup.

`asyncio.run` turns the first Ctrl-C into one cancellation of its main task, and one
cancellation can be lost (Python 3.11's `asyncio.wait_for` drops one that arrives as the call
it awaits completes; 3.12 rewrote it): once, in CI, `inferedge run` went on to the end as if
Ctrl-C had never been pressed. A
KeyboardInterrupt raised wherever the signal lands is no better: landing in the event loop's own
set-up or tear-down, it leaves a half-made loop that prints a traceback when collected.

So around the loop a signal is only noted, and while the loop runs it reaches the loop itself,
which cancels the coroutine and keeps cancelling it until it is done.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any, Final, TypeVar

T = TypeVar("T")
SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
RECANCEL_S: Final = 0.1


def run_interruptible(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run(make())`; KeyboardInterrupt once it stopped, if a signal stopped it."""
    interrupted = False

    def note(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None  # run by asyncio.run

        def cancel_until_done() -> None:
            if not task.done():
                task.cancel()
                loop.call_later(RECANCEL_S, cancel_until_done)

        def interrupt() -> None:
            nonlocal interrupted
            interrupted = True
            cancel_until_done()

        for sig in SIGNALS:
            loop.add_signal_handler(sig, interrupt)
        if interrupted:  # noted while the loop was being made
            interrupt()
        try:
            return await make()
        finally:
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)
                signal.signal(sig, note)  # asyncio put back Python's default handler

    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    outcome: list[T] = []
    for sig in SIGNALS:
        signal.signal(sig, note)
    try:
        outcome.append(asyncio.run(guarded()))
    except BaseException:
        if not interrupted:
            raise  # what the coroutine raised of its own; an interrupt is reported below
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if interrupted:
        raise KeyboardInterrupt
    return outcome[0]
