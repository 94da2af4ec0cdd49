"""The artifact store contract: a flat space of '/'-separated keys holding byte blobs."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Protocol

from inferedge.core.errors import InferedgeError

# S3's limit on an object name; a local directory accepts less only on exotic filesystems.
_MAX_KEY_BYTES = 1024


class StoreError(InferedgeError):
    """An artifact store operation failed: a missing key, refused credentials, an unreachable
    store or an invalid key. The message is one line naming the store URI and the key."""


class IntegrityError(StoreError):
    """A downloaded artifact's content does not match the hash its manifest promises."""


class ArtifactStore(Protocol):
    """Where artifacts live: a directory (`LocalStore`) or an S3 bucket (`S3Store`).

    Keys are relative '/'-separated strings (see `check_key`). A prefix names a "directory":
    `list("a/b")` returns the keys under `a/b/`, never `a/bc`. Every write is all-or-nothing:
    a reader sees the old object or the new one, never a partial one.
    """

    uri: str

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing any object there."""
        ...

    def put_file(self, key: str, path: Path) -> None:
        """Store the content of the local file `path` under `key`."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The content of `key`; StoreError if there is none."""
        ...

    def get_file(self, key: str, path: Path) -> None:
        """Write the content of `key` to the local file `path` (atomically, parents created)."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        ...

    def list(self, prefix: str = "") -> builtins.list[str]:
        """The sorted keys under the directory `prefix` ('' for all keys)."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key` if it exists."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under the directory `prefix` (not '') and return how many."""
        ...


def check_key(key: str, uri: str) -> str:
    """Return `key` if it is a valid store key, else raise StoreError naming it and the rule.

    A key is a non-empty relative path of '/'-separated segments: no leading '/', no empty,
    '.' or '..' segment, no backslash or control character, at most 1024 UTF-8 bytes.
    """
    problem = _key_problem(key)
    if problem:
        raise StoreError(f"{uri}: invalid key {key!r}: {problem}")
    return key


def check_prefix(prefix: str, uri: str) -> str:
    """Normalise a directory prefix: '' (the whole store) or a valid key; one trailing '/' is
    dropped."""
    trimmed = prefix.removesuffix("/")
    if not trimmed:
        if prefix:
            raise StoreError(f"{uri}: invalid prefix {prefix!r}: expected '' or a relative path")
        return ""
    problem = _key_problem(trimmed)
    if problem:
        raise StoreError(f"{uri}: invalid prefix {prefix!r}: {problem}")
    return trimmed


def _key_problem(key: str) -> str | None:
    if not key:
        return "expected a non-empty relative path like 'ns/pipeline/file.bin'"
    if key.startswith("/"):
        return "must be relative (no leading '/')"
    if "\\" in key:
        return "use '/' as the separator, not '\\'"
    if any(ord(char) < 32 or ord(char) == 127 for char in key):
        return "must not contain control characters"
    segments = key.split("/")
    if "" in segments:
        return "must not contain empty segments ('//' or a trailing '/')"
    if "." in segments or ".." in segments:
        return "must not contain '.' or '..' segments"
    try:
        size = len(key.encode())
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    if size > _MAX_KEY_BYTES:
        return f"longer than {_MAX_KEY_BYTES} bytes"
    return None
