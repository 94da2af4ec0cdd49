"""nats-py's own log lines, in one line.

nats-py logs some failures itself, with their traceback, instead of passing them to the error
callback: an exception out of its read loop (for one, a reply that lands on a request already
given up while a process shuts down) goes to `logging.error(..., exc_info=...)`. Our processes
print warnings and errors on stderr as one line each, never a traceback, so the record keeps its
level and message and the exception becomes its last line's tail.
"""

from __future__ import annotations

import logging

from inferedge.core.errors import one_line

NATS_LOGGER = "nats.aio.client"


class OneLine(logging.Filter):
    """Folds a record's exception into its message (`message: Type: text`) and drops the
    traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {one_line(record.exc_info[1])}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_library_tracebacks() -> None:
    """Install `OneLine` on nats-py's logger, once."""
    logger = logging.getLogger(NATS_LOGGER)
    if not any(isinstance(f, OneLine) for f in logger.filters):
        logger.addFilter(OneLine())
