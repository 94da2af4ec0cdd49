"""Artifact sets: files published under one prefix and committed by a manifest written last.

A set is immutable once its manifest exists. Readers trust only committed sets and verify each
file against the sha256 the manifest records. This module knows the manifest only by its file
name; what it contains is the caller's business.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from inferedge.core.digest import sha256_file
from inferedge.core.errors import one_line
from inferedge.storage.base import (
    ArtifactStore,
    IntegrityError,
    StoreError,
    check_key,
    check_prefix,
)

MANIFEST_NAME = "manifest.json"

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
log = logging.getLogger(__name__)


def publish(
    store: ArtifactStore,
    prefix: str,
    files: Mapping[str, Path],
    manifest: bytes,
    manifest_name: str = MANIFEST_NAME,
) -> None:
    """Upload `files` as `prefix/<name>`, then `manifest` as `prefix/<manifest_name>`.

    The manifest goes last, so a set is visible (committed) only once complete. If any upload
    fails, everything under the prefix is deleted (best effort) and StoreError is raised. A
    committed set is never changed: publishing the identical manifest again does nothing, a
    different one is refused.
    """
    base = _set_prefix(store, prefix)
    where = f"{store.uri}/{base}"
    for name in files:
        check_key(name, where)
        if name == manifest_name:
            raise StoreError(f"{where}: a file may not be named {manifest_name!r} (the manifest)")
    manifest_key = f"{base}/{check_key(manifest_name, where)}"
    if store.exists(manifest_key):
        if store.get_bytes(manifest_key) == manifest:
            log.info("%s: already committed with the same %s", where, manifest_name)
            return
        raise StoreError(
            f"{where}: already committed with a different {manifest_name}; artifact sets are "
            "immutable, publish under a new prefix"
        )
    sources = {name: Path(path) for name, path in files.items()}
    for name, path in sources.items():
        if not path.is_file():
            raise StoreError(f"{where}: cannot publish {name!r}: {str(path)!r} is not a file")
    try:
        for name in sorted(sources):
            store.put_file(f"{base}/{name}", sources[name])
        store.put_bytes(manifest_key, manifest)
    except BaseException as exc:
        _roll_back(store, base, manifest_name)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt and friends keep their meaning
        detail = str(exc) if isinstance(exc, StoreError) else one_line(exc)
        raise StoreError(f"{where}: publish failed and was rolled back: {detail}") from exc


def is_committed(store: ArtifactStore, prefix: str, manifest_name: str = MANIFEST_NAME) -> bool:
    """Whether the set under `prefix` has its manifest, i.e. is complete and immutable."""
    return store.exists(f"{_set_prefix(store, prefix)}/{manifest_name}")


def read_manifest(store: ArtifactStore, prefix: str, manifest_name: str = MANIFEST_NAME) -> bytes:
    """The manifest bytes of a committed set; StoreError if the set is not committed."""
    base = _set_prefix(store, prefix)
    key = f"{base}/{manifest_name}"
    if not store.exists(key):
        raise StoreError(f"{store.uri}/{base}: not committed (no {manifest_name})")
    return store.get_bytes(key)


def fetch(
    store: ArtifactStore,
    prefix: str,
    dest: Path,
    expected_sha256: Mapping[str, str],
    manifest_name: str = MANIFEST_NAME,
) -> dict[str, Path]:
    """Download the named files of a committed set into `dest` and return their paths by name.

    Every file is downloaded to a staging directory inside `dest` and checked against its
    expected sha256 before any is moved into place, so `dest` never holds an unverified file:
    on a mismatch IntegrityError is raised and nothing new appears in `dest`.
    """
    base = _set_prefix(store, prefix)
    where = f"{store.uri}/{base}"
    wanted = {
        check_key(name, where): _expected_hash(where, name, digest)
        for name, digest in expected_sha256.items()
    }
    if not is_committed(store, base, manifest_name):
        raise StoreError(f"{where}: not committed (no {manifest_name}); refusing to fetch")
    target = Path(dest)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".inferedge-fetch-", dir=target))
    try:
        for name, expected in sorted(wanted.items()):
            staged = staging.joinpath(*name.split("/"))
            store.get_file(f"{base}/{name}", staged)
            actual = sha256_file(staged)
            if actual != expected:
                raise IntegrityError(
                    f"artifact {name!r} in {where}: sha256 mismatch "
                    f"(manifest says {expected[:12]}…, file has {actual[:12]}…)"
                )
        return {name: _move_into(staging, target, name, where) for name in sorted(wanted)}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def discard(store: ArtifactStore, prefix: str, manifest_name: str = MANIFEST_NAME) -> int:
    """Delete a set: its manifest first (so it stops counting as committed), then the rest.

    Returns how many keys were deleted.
    """
    base = _set_prefix(store, prefix)
    manifest_key = f"{base}/{manifest_name}"
    had_manifest = store.exists(manifest_key)
    store.delete(manifest_key)
    return int(had_manifest) + store.delete_prefix(base)


def _set_prefix(store: ArtifactStore, prefix: str) -> str:
    base = check_prefix(prefix, store.uri)
    if not base:
        raise StoreError(f"{store.uri}: an artifact set needs a prefix like 'ns/pipeline/hash'")
    return base


def _expected_hash(where: str, name: str, digest: str) -> str:
    normalised = digest.strip().lower()
    if not _SHA256_HEX.fullmatch(normalised):
        raise StoreError(f"{where}: expected sha256 of {name!r} is not 64 hex digits: {digest!r}")
    return normalised


def _move_into(staging: Path, target: Path, name: str, where: str) -> Path:
    parts = name.split("/")
    final = target.joinpath(*parts)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging.joinpath(*parts), final)
    except OSError as exc:
        raise StoreError(
            f"{where}: cannot place {name!r} at {str(final)!r}: {one_line(exc)}"
        ) from exc
    return final


def _roll_back(store: ArtifactStore, base: str, manifest_name: str) -> None:
    try:
        discard(store, base, manifest_name)
    except Exception as exc:  # the original failure matters more than this one
        log.warning("%s/%s: could not roll back a failed publish: %s", store.uri, base, exc)
