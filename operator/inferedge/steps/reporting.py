"""How a step tells its host what it is doing: news lines and progress.

A step run as a Job or as `inferedge run`'s child process writes plain lines (Job logs are not
terminals): news as is, progress as `title: done/total` once per tenth. `inferedge run` reads
those lines back (`parse_progress`) and draws them as its own progress bars.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol, TextIO

from inferedge.core.progress import ProgressCallback

_PROGRESS = re.compile(r"^(?P<title>\S.*): (?P<done>\d+)/(?P<total>\d+)$")


class Reporter(Protocol):
    """Where a step tells the user what it is doing."""

    def info(self, text: str) -> None:
        """One line of news."""

    def progress(self, title: str) -> AbstractContextManager[ProgressCallback]:
        """A progress bar for one long step; yields its `progress(done, total)` callback."""


@dataclass(frozen=True)
class Progress:
    """One progress line, parsed."""

    title: str
    done: int
    total: int


def parse_progress(line: str) -> Progress | None:
    """The progress a line written by `LineReporter` reports, or None for a news line."""
    found = _PROGRESS.match(line.rstrip("\n"))
    if found is None:
        return None
    return Progress(found["title"], int(found["done"]), int(found["total"]))


class LineReporter:
    """News and progress as plain lines on a stream (stdout by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text + "\n")
        stream.flush()

    def info(self, text: str) -> None:
        """Write one line (a line that looks like progress is still news to a reader)."""
        self._write(text)

    @contextmanager
    def progress(self, title: str) -> Iterator[ProgressCallback]:
        """One line per tenth done, so a log stays short and a reader sees movement."""
        last = [-1]

        def report(done: int, total: int) -> None:
            tenth = 10 * done // total if total else 10
            if tenth > last[0]:
                last[0] = tenth
                self._write(f"{title}: {done}/{total}")

        yield report
