"""Artifact storage: a store protocol, a directory store, an S3 store, and artifact sets.

`open_store(uri)` picks the store from a URI. The S3 store needs the `minio` client (the `s3`
extra); it is imported only when an `s3://` URI is opened, so local use works without it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from inferedge.core.digest import sha256_file
from inferedge.storage.artifacts import (
    MANIFEST_NAME,
    discard,
    fetch,
    is_committed,
    publish,
    read_manifest,
)
from inferedge.storage.base import ArtifactStore, IntegrityError, StoreError, check_key
from inferedge.storage.local import LocalStore

__all__ = [
    "MANIFEST_NAME",
    "ArtifactStore",
    "IntegrityError",
    "LocalStore",
    "StoreError",
    "check_key",
    "discard",
    "fetch",
    "fetch_object",
    "is_committed",
    "open_store",
    "publish",
    "read_manifest",
    "read_text",
    "sha256_file",
]

_ACCEPTED = "expected a directory path, file:///absolute/path or s3://bucket[/prefix]"


def open_store(uri: str, *, env: Mapping[str, str] | None = None) -> ArtifactStore:
    """The store a URI names: a directory path or `file:///abs/path` gives a LocalStore,
    `s3://bucket[/prefix]` an S3Store configured from `env` (default os.environ; see
    `inferedge.storage.s3config`). Anything else raises StoreError naming the accepted forms.
    """
    text = uri.strip()
    if not text:
        raise StoreError(f"artifact store URI is empty; {_ACCEPTED}")
    if "://" not in text:
        return LocalStore(Path(text))
    parts = urlsplit(text)
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise StoreError(
                f"artifact store {uri!r}: a file URI needs an absolute local path; {_ACCEPTED}"
            )
        return LocalStore(Path(path))
    if parts.scheme == "s3":
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        if not bucket:
            raise StoreError(f"artifact store {uri!r}: no bucket; {_ACCEPTED}")
        return _s3_store(uri, bucket, prefix, os.environ if env is None else env)
    raise StoreError(f"artifact store {uri!r}: unsupported scheme {parts.scheme!r}; {_ACCEPTED}")


def _s3_store(uri: str, bucket: str, prefix: str, env: Mapping[str, str]) -> ArtifactStore:
    try:
        from inferedge.storage.s3 import S3Store
    except ModuleNotFoundError as exc:
        if exc.name != "minio":
            raise
        raise StoreError(
            f"artifact store {uri!r} needs the minio client: pip install 'inferedge[s3]'"
        ) from exc
    return S3Store.from_env(bucket, prefix, env=env)


def fetch_object(uri: str, dest: Path) -> Path:
    """The local file behind `uri`: `s3://bucket/key` is downloaded to `dest` (credentials from
    the environment, as for every store); a path or `file://` URI is used where it is.

    The one place an object URI is split into a store and a key.
    """
    text = uri.strip()
    if not text.startswith("s3://"):
        local = Path(unquote(urlsplit(text).path)) if text.startswith("file://") else Path(text)
        if not local.is_file():
            raise StoreError(f"{uri!r}: no such file")
        return local
    bucket, _, key = text.removeprefix("s3://").partition("/")
    if not bucket or not key or key.endswith("/"):
        raise StoreError(f"{uri!r}: expected s3://bucket/key")
    dest.parent.mkdir(parents=True, exist_ok=True)
    open_store(f"s3://{bucket}").get_file(key, dest)
    return dest


def read_text(store: ArtifactStore, key: str) -> str:
    """A stored text object (a plan, a profile); `StoreError` names it if it is not UTF-8."""
    try:
        return store.get_bytes(key).decode("utf-8")
    except UnicodeDecodeError:
        raise StoreError(f"{store.uri}/{key}: not UTF-8 text") from None
