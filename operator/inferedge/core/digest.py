"""Content digests: the one helper that reads files, shared by export, load and the store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def json_digest(payload: object, length: int = 16) -> str:
    """Hex sha256 of `payload` as canonical JSON (sorted keys), cut to `length` digits.

    Names derived from specs (store keys, artifact-set identities, child objects) use it, so
    equal inputs name the same thing on every host.
    """
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
