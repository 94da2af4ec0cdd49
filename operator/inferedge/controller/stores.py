"""The operator's access to a pipeline's artifact store, signed in with the pipeline's Secret.

Everything here blocks (minio, files), so each call runs in a worker thread. Store problems come
back as lifecycle Failures: a store that does not answer is retried, a missing Secret or a
profile that does not parse waits for a change.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
from collections.abc import Mapping
from typing import Any, Final

from inferedge.api.keys import ArtifactIdentity, identity_key, parse_identity
from inferedge.api.pipeline import StorageSpec
from inferedge.controller.kube import SECRETS, Kube, KubeError
from inferedge.controller.pods import S3_ACCESS_KEY, S3_SECRET_KEY
from inferedge.core.errors import InferedgeError, one_line
from inferedge.core.facts import Failure, retried, waits
from inferedge.core.manifest import MANIFEST_NAME, Manifest, parse_manifest
from inferedge.core.profile import MeasuredProfile, parse_profile
from inferedge.storage import ArtifactStore, StoreError, discard, open_store

log = logging.getLogger(__name__)
_CACHE_LIMIT: Final = 256


class StoreFailure(Exception):
    """A store step failed; `failure` says how the lifecycle should treat it."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def _decode(secret: Mapping[str, Any], key: str, where: str) -> str:
    data = secret.get("data") or {}
    if key not in data:
        raise StoreFailure(
            waits("SecretInvalid", f"{where} has no key {key!r}", f"add {key!r} to the Secret")
        )
    try:
        return base64.b64decode(str(data[key]), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise StoreFailure(
            waits("SecretInvalid", f"{where}: key {key!r} is not base64 text", "fix the Secret")
        ) from None


class Stores:
    """Opens pipelines' stores and caches what never changes (profiles, committed manifests)."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._profiles: dict[tuple[str, str, str], MeasuredProfile] = {}
        self._manifests: dict[tuple[str, str, str], tuple[Manifest, str]] = {}
        self._plans: set[tuple[str, str]] = set()
        self._identities: dict[tuple[str, str, str], ArtifactIdentity] = {}

    async def open(self, namespace: str, storage: StorageSpec) -> ArtifactStore:
        """The pipeline's store, with credentials from the Secret named in spec.storage."""
        env: dict[str, str] | None = None
        if storage.secret_ref is not None or storage.endpoint:
            env = {}
            if storage.endpoint:
                env["INFEREDGE_S3_ENDPOINT"] = storage.endpoint
            if storage.secret_ref is not None:
                name = storage.secret_ref.name
                where = f"Secret {namespace}/{name} (spec.storage.secretRef)"
                try:
                    secret = await self._kube.get(SECRETS, namespace, name)
                except KubeError as exc:
                    raise StoreFailure(retried("KubernetesApiError", str(exc))) from exc
                if secret is None:
                    raise StoreFailure(retried("SecretNotFound", f"{where} does not exist"))
                env["INFEREDGE_S3_ACCESS_KEY"] = _decode(secret, S3_ACCESS_KEY, where)
                env["INFEREDGE_S3_SECRET_KEY"] = _decode(secret, S3_SECRET_KEY, where)
        try:
            return open_store(storage.uri, env=env)
        except StoreError as exc:
            raise StoreFailure(
                waits("StoreInvalid", f"spec.storage: {exc}", "fix spec.storage")
            ) from None

    async def _io(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except StoreError as exc:
            raise StoreFailure(retried("StoreUnavailable", f"{what}: {exc}")) from exc
        except OSError as exc:
            raise StoreFailure(retried("StoreUnavailable", f"{what}: {one_line(exc)}")) from exc

    async def profile(self, store: ArtifactStore, key: str, stamp: str) -> MeasuredProfile:
        """A profile a profiling Job wrote; `stamp` (its profiledAt) makes re-profiles re-read."""
        cache_key = (store.uri, key, stamp)
        if cache_key not in self._profiles:
            data: bytes = await self._io(f"reading {key}", store.get_bytes, key)
            try:
                profile = parse_profile(data.decode(), f"{store.uri}/{key}")
            except (InferedgeError, UnicodeDecodeError) as exc:
                raise StoreFailure(
                    waits(
                        "ProfileInvalid",
                        str(exc),
                        "delete the DeviceProfile's profiling Job to measure again",
                    )
                ) from None
            _bounded(self._profiles)[cache_key] = profile
        return self._profiles[cache_key]

    async def has(self, store: ArtifactStore, key: str) -> bool:
        """Whether an immutable object (a plan) exists; a yes is cached."""
        if (store.uri, key) in self._plans:
            return True
        found: bool = await self._io(f"checking {key}", store.exists, key)
        if found:
            self._plans.add((store.uri, key))
        return found

    async def put(self, store: ArtifactStore, key: str, data: bytes) -> None:
        """Write one object (the plan)."""
        await self._io(f"writing {key}", store.put_bytes, key, data)
        self._plans.add((store.uri, key))

    async def manifest(
        self, store: ArtifactStore, prefix: str, stamp: str
    ) -> tuple[Manifest, str] | None:
        """The committed manifest under `prefix` and its sha256, or None if not committed.

        `stamp` names the export run, so a set re-published by a new run is read again.
        """
        cache_key = (store.uri, prefix, stamp)
        if cache_key in self._manifests:
            return self._manifests[cache_key]
        key = f"{prefix}/{MANIFEST_NAME}"
        if not await self._io(f"checking {key}", store.exists, key):
            return None
        data: bytes = await self._io(f"reading {key}", store.get_bytes, key)
        try:
            manifest = parse_manifest(data, f"{store.uri}/{key}")
        except InferedgeError as exc:
            raise StoreFailure(
                waits("ArtifactsInvalid", str(exc), "delete the export Job to export again")
            ) from None
        result = (manifest, hashlib.sha256(data).hexdigest())
        _bounded(self._manifests)[cache_key] = result
        return result

    async def identity(
        self, store: ArtifactStore, training_prefix: str, stamp: str
    ) -> ArtifactIdentity | None:
        """The identity the training step recorded under `training_prefix`, or None if it has
        none; `stamp` names the export run, so a retrained set is read again."""
        cache_key = (store.uri, training_prefix, stamp)
        if cache_key in self._identities:
            return self._identities[cache_key]
        key = identity_key(training_prefix)
        if not await self._io(f"checking {key}", store.exists, key):
            return None
        data: bytes = await self._io(f"reading {key}", store.get_bytes, key)
        try:
            identity = parse_identity(data, f"{store.uri}/{key}")
        except InferedgeError as exc:
            raise StoreFailure(
                waits("ArtifactsInvalid", str(exc), "delete the training Job to train again")
            ) from None
        _bounded(self._identities)[cache_key] = identity
        return identity

    async def discard_pipeline(self, store: ArtifactStore, prefix: str) -> int:
        """Delete everything a pipeline stored: each committed set manifest-first, then the rest."""

        def work() -> int:
            removed = 0
            keys = store.list(prefix)
            sets = sorted({k.rsplit("/", 1)[0] for k in keys if k.endswith(f"/{MANIFEST_NAME}")})
            for set_prefix in sets:
                removed += discard(store, set_prefix)
            return removed + store.delete_prefix(prefix)

        removed: int = await self._io(f"deleting {prefix}", work)
        return removed


def _bounded(cache: dict[Any, Any]) -> dict[Any, Any]:
    """The cache, with its oldest entry dropped when it is full (insertion order)."""
    if len(cache) >= _CACHE_LIMIT:
        cache.pop(next(iter(cache)))
    return cache
