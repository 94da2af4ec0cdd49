"""Where the dataplanes run model calls, and the milliseconds their answers report."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


def compute_thread(name: str) -> ThreadPoolExecutor:
    """The one thread a dataplane runs torch on, keeping the event loop free meanwhile.

    One thread, not a pool: torch already spreads one forward over the cores, and forwards
    started from several threads each bring their own OpenMP team, oversubscribing the cores.
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)


def ms(seconds: float) -> float:
    """`seconds` in milliseconds, the unit every timing of an answer is given in."""
    return seconds * 1000.0
