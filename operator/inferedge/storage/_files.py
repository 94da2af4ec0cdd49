"""Local file helpers shared by the stores: atomic replacement, upload source checks."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from inferedge.storage.base import StoreError

# Temporary files end with this, so a store listing its directory can skip writes in flight.
PARTIAL_SUFFIX = ".inferedge-partial"


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file whose content replaces `path` only if the block completes.

    The data goes to a temporary file in the same directory (so the final `os.replace` is an
    atomic rename on one filesystem), is fsynced, then renamed over `path`; the directory is
    fsynced too so the rename survives a crash. On any error the temporary file is removed and
    `path` keeps its previous content (or stays absent).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            # mkstemp creates 0600 files; artifacts must stay readable to other users of the store.
            os.fchmod(handle.fileno(), 0o644)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_source_file(uri: str, key: str, path: Path) -> Path:
    """`path` if it is a regular file to upload as `key`, else a StoreError naming both."""
    source = Path(path)
    if not source.is_file():
        state = "is not a regular file" if source.exists() else "does not exist"
        raise StoreError(f"{uri}: cannot upload key {key!r}: local file {str(source)!r} {state}")
    return source
