"""LocalStore: an artifact store in a local directory, the embedded default of `inferedge run`."""

from __future__ import annotations

import builtins
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from inferedge.storage._files import PARTIAL_SUFFIX, atomic_write, check_source_file
from inferedge.storage.base import StoreError, check_key, check_prefix

_COPY_CHUNK = 1024 * 1024


class LocalStore:
    """Keys map to files under `root` (created on the first write). Writes are atomic renames,
    so concurrent readers see either the previous or the complete new content."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing any object there."""
        target = self._path(key)
        with self._os_errors("write", key), atomic_write(target) as handle:
            handle.write(data)

    def put_file(self, key: str, path: Path) -> None:
        """Store the content of the local file `path` under `key`."""
        target = self._path(key)
        source = check_source_file(self.uri, key, path)
        with (
            self._os_errors("write", key),
            source.open("rb") as reader,
            atomic_write(target) as handle,
        ):
            shutil.copyfileobj(reader, handle, _COPY_CHUNK)

    def get_bytes(self, key: str) -> bytes:
        """The content of `key`; StoreError if there is none."""
        source = self._path(key)
        with self._os_errors("read", key):
            return source.read_bytes()

    def get_file(self, key: str, path: Path) -> None:
        """Write the content of `key` to `path` atomically, creating its parent directories."""
        source = self._path(key)
        with self._os_errors("read", key):
            reader = source.open("rb")
        with reader, self._os_errors("download", key), atomic_write(Path(path)) as handle:
            shutil.copyfileobj(reader, handle, _COPY_CHUNK)

    def exists(self, key: str) -> bool:
        """Whether a file is stored under `key`."""
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> builtins.list[str]:
        """The sorted keys under the directory `prefix` ('' for all keys)."""
        directory = self._directory(prefix)
        if not directory.is_dir():
            return []
        keys = []
        for parent, _, names in os.walk(directory):
            for name in names:
                if not name.endswith(PARTIAL_SUFFIX):
                    keys.append(Path(parent, name).relative_to(self.root).as_posix())
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Remove `key` if it exists, and directories the removal left empty."""
        target = self._path(key)
        with self._os_errors("delete", key):
            target.unlink(missing_ok=True)
            self._prune_empty(target.parent)

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under the directory `prefix` (not '') and return how many."""
        if not check_prefix(prefix, self.uri):
            raise StoreError(f"{self.uri}: refusing to delete the whole store (prefix is empty)")
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def _path(self, key: str) -> Path:
        check_key(key, self.uri)
        if key.endswith(PARTIAL_SUFFIX):
            raise StoreError(
                f"{self.uri}: invalid key {key!r}: the suffix {PARTIAL_SUFFIX!r} is reserved"
            )
        return self.root.joinpath(*key.split("/"))

    def _directory(self, prefix: str) -> Path:
        normalised = check_prefix(prefix, self.uri)
        return self.root.joinpath(*normalised.split("/")) if normalised else self.root

    def _prune_empty(self, directory: Path) -> None:
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or gone): the rest of the tree is still in use
            directory = directory.parent

    @contextlib.contextmanager
    def _os_errors(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            if action == "read":
                raise StoreError(f"{self.uri}: key {key!r} not found") from exc
            raise _os_error(self.uri, action, key, exc) from exc
        except OSError as exc:
            raise _os_error(self.uri, action, key, exc) from exc


def _os_error(uri: str, action: str, key: str, exc: OSError) -> StoreError:
    reason = exc.strerror or type(exc).__name__
    where = f" ({exc.filename})" if exc.filename else ""
    return StoreError(f"{uri}: cannot {action} key {key!r}: {reason}{where}")
