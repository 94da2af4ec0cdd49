"""Ctrl-C stops a coroutine even when it swallows a cancellation (as Python 3.11's
asyncio.wait_for can), and is then raised as KeyboardInterrupt; handlers come back."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from inferedge.local.interruptible import run_interruptible


def test_a_swallowed_cancellation_does_not_keep_the_run_going() -> None:
    before = signal.getsignal(signal.SIGINT)
    seen: list[str] = []

    async def stubborn() -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("swallowed")
        await asyncio.sleep(30)
        seen.append("ran on")

    with pytest.raises(KeyboardInterrupt):
        run_interruptible(stubborn)
    assert seen == ["swallowed"]
    assert signal.getsignal(signal.SIGINT) is before


def test_sigterm_stops_it_too_and_a_quiet_run_returns_its_result() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert run_interruptible(answer) == 42

    async def waits() -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        await asyncio.sleep(30)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        run_interruptible(waits)
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_error_of_the_coroutine_is_raised_as_it_is() -> None:
    async def fails() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        run_interruptible(fails)
