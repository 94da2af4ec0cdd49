"""S3Store: artifacts in an S3 bucket (MinIO, AWS S3 or any S3-compatible store), via minio."""

from __future__ import annotations

import builtins
import io
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from inferedge.core.errors import one_line
from inferedge.storage._files import atomic_write, check_source_file
from inferedge.storage.base import StoreError, check_key, check_prefix
from inferedge.storage.s3config import (
    DEFAULT_REGION,
    ENV_ACCESS_KEY,
    ENV_SECRET_KEY,
    S3Credentials,
    S3Settings,
)

MiB = 1024 * 1024
# S3's bounds on a multipart part (all but the last part).
_MIN_PART_SIZE = 5 * MiB
_MAX_PART_SIZE = 5 * 1024 * MiB
_MAX_BACKOFF_S = 10.0
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Codes S3 documents as "try again later"; any 5xx or 429 status counts as well.
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling"}
)

_T = TypeVar("_T")
log = logging.getLogger(__name__)


class S3Store:
    """Keys map to objects `<prefix>/<key>` in `bucket`.

    Every operation is retried on transient failures (connection errors, timeouts, 5xx, SlowDown
    and the like) up to `max_attempts` times with exponential backoff and jitter; permanent ones
    (missing key or bucket, refused credentials) fail at once. Files larger than `part_size` are
    uploaded in parts. Credentials come from the caller (see `from_env`), never from code.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str,
        credentials: S3Credentials,
        secure: bool = True,
        region: str = DEFAULT_REGION,
        part_size: int = 16 * MiB,
        max_attempts: int = 5,
        backoff_s: float = 0.2,
        timeout_s: float = 60.0,
    ) -> None:
        if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
            raise StoreError(
                f"s3://{bucket}: invalid bucket name; expected 3-63 lowercase letters, digits, "
                "'.' or '-', starting and ending with a letter or digit"
            )
        _check_options(part_size, max_attempts, backoff_s, timeout_s)
        self.bucket = bucket
        self.prefix = check_prefix(prefix, f"s3://{bucket}")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint_url = f"{'https' if secure else 'http'}://{endpoint}"
        self.region = region
        self.part_size = part_size
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self._access_key = credentials.access_key
        self._root = f"{self.prefix}/" if self.prefix else ""
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout_s, 10.0), read=timeout_s),
            # Retries are ours (`_call`), so that max_attempts means what it says.
            retries=False,
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
        )
        try:
            self._client = Minio(
                endpoint,
                access_key=credentials.access_key,
                secret_key=credentials.secret_key,
                secure=secure,
                region=region,
                http_client=http,
            )
        except ValueError as exc:
            raise StoreError(
                f"{self.uri}: invalid endpoint {endpoint!r} ({exc}); expected host[:port]"
            ) from exc

    @classmethod
    def from_env(
        cls, bucket: str, prefix: str = "", *, env: Mapping[str, str] | None = None
    ) -> S3Store:
        """A store whose endpoint, region and credentials come from `env` (default
        os.environ); see `S3Settings.from_env`."""
        settings = S3Settings.from_env(env)
        return cls(
            bucket,
            prefix,
            endpoint=settings.endpoint,
            secure=settings.secure,
            region=settings.region,
            credentials=settings.credentials,
        )

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r}, endpoint={self.endpoint_url!r})"

    def ensure_bucket(self) -> bool:
        """Create the bucket if it is missing; True if this call created it."""

        def create() -> bool:
            if self._client.bucket_exists(self.bucket):
                return False
            try:
                self._client.make_bucket(self.bucket, location=self.region)
            except S3Error as exc:
                # Another process created it between our check and our request.
                if exc.code == "BucketAlreadyOwnedByYou":
                    return False
                raise
            return True

        return self._call("create", f"bucket {self.bucket!r}", create)

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing any object there."""
        name = self._object(key)
        self._call(
            "upload",
            f"key {key!r}",
            lambda: self._client.put_object(
                self.bucket, name, io.BytesIO(data), len(data), part_size=self.part_size
            ),
        )

    def put_file(self, key: str, path: Path) -> None:
        """Upload the local file `path` as `key`, in parts if it is larger than `part_size`."""
        name = self._object(key)
        source = check_source_file(self.uri, key, path)
        self._call(
            "upload",
            f"key {key!r}",
            lambda: self._client.fput_object(
                self.bucket, name, str(source), part_size=self.part_size
            ),
        )

    def get_bytes(self, key: str) -> bytes:
        """The content of `key`; StoreError if there is none."""
        name = self._object(key)

        def download() -> bytes:
            response = self._client.get_object(self.bucket, name)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call("download", f"key {key!r}", download)

    def get_file(self, key: str, path: Path) -> None:
        """Write the content of `key` to `path` atomically, creating its parent directories."""
        name = self._object(key)
        target = Path(path)

        def download() -> None:
            response = self._client.get_object(self.bucket, name)
            try:
                with atomic_write(target) as handle:
                    for chunk in response.stream(MiB):
                        handle.write(chunk)
            finally:
                response.close()
                response.release_conn()

        self._call("download", f"key {key!r}", download)

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        name = self._object(key)

        def stat() -> bool:
            try:
                self._client.stat_object(self.bucket, name)
            except S3Error as exc:
                if exc.code == "NoSuchKey":
                    return False
                raise
            return True

        return self._call("check", f"key {key!r}", stat)

    def list(self, prefix: str = "") -> builtins.list[str]:
        """The sorted keys under the directory `prefix` ('' for all keys)."""
        directory = check_prefix(prefix, self.uri)
        search = f"{self._root}{directory}/" if directory else self._root

        def names() -> builtins.list[str]:
            listing = self._client.list_objects(self.bucket, prefix=search or None, recursive=True)
            return [str(item.object_name) for item in listing]

        found = self._call("list", f"prefix {directory!r}", names)
        # Folder markers other tools create ("a/b/") are not objects to us.
        return sorted(name[len(self._root) :] for name in found if not name.endswith("/"))

    def delete(self, key: str) -> None:
        """Remove `key` if it exists."""
        name = self._object(key)
        self._call("delete", f"key {key!r}", lambda: self._client.remove_object(self.bucket, name))

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under the directory `prefix` (not '') and return how many."""
        directory = check_prefix(prefix, self.uri)
        if not directory:
            raise StoreError(f"{self.uri}: refusing to delete the whole store (prefix is empty)")
        keys = self.list(directory)
        targets = [DeleteObject(self._root + key) for key in keys]

        def remove() -> builtins.list[str]:
            # remove_objects is lazy: iterating it sends the requests and yields failures.
            errors = self._client.remove_objects(self.bucket, targets)
            return [f"{error.name}: {error.code}" for error in errors]

        failures = self._call("delete", f"prefix {directory!r}", remove) if targets else []
        if failures:
            raise StoreError(
                f"{self.uri}: could not delete {len(failures)} of {len(keys)} keys under "
                f"{directory!r} (first: {failures[0]})"
            )
        return len(keys)

    def _object(self, key: str) -> str:
        return self._root + check_key(key, self.uri)

    def _call(self, action: str, subject: str, operation: Callable[[], _T]) -> _T:
        attempt = 1
        while True:
            try:
                return operation()
            except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
                if not _is_transient(exc):
                    raise self._permanent_error(action, subject, exc) from exc
                if attempt >= self.max_attempts:
                    raise StoreError(
                        f"{self.uri}: {action} of {subject} failed after {attempt} attempts; "
                        f"{self.endpoint_url} unreachable or failing ({_describe(exc)})"
                    ) from exc
                delay = min(_MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1))
                # Jitter spreads the retries of many clients hit by the same outage.
                pause = random.uniform(delay / 2, delay)
                log.warning(
                    "%s: %s of %s failed (%s); attempt %d of %d in %.2f s",
                    self.uri,
                    action,
                    subject,
                    _describe(exc),
                    attempt + 1,
                    self.max_attempts,
                    pause,
                )
                time.sleep(pause)
                attempt += 1

    def _permanent_error(self, action: str, subject: str, exc: Exception) -> StoreError:
        code = exc.code if isinstance(exc, S3Error) else None
        if code == "NoSuchKey":
            message = f"{subject} not found"
        elif code == "NoSuchBucket":
            message = (
                f"bucket {self.bucket!r} does not exist at {self.endpoint_url} "
                "(create it, or check the bucket name)"
            )
        elif code == "AccessDenied":
            message = (
                f"access denied to {action} {subject} (check that access key "
                f"{self._access_key!r} may do this in bucket {self.bucket!r})"
            )
        elif code == "InvalidAccessKeyId":
            message = (
                f"{self.endpoint_url} does not know access key {self._access_key!r} "
                f"(check {ENV_ACCESS_KEY} or the credentials file)"
            )
        elif code == "SignatureDoesNotMatch":
            message = (
                f"{self.endpoint_url} rejected the secret key of access key "
                f"{self._access_key!r} (check {ENV_SECRET_KEY} or the credentials file)"
            )
        else:
            message = f"{action} of {subject} failed: {_describe(exc)}"
        return StoreError(f"{self.uri}: {message}")


def _check_options(part_size: int, max_attempts: int, backoff_s: float, timeout_s: float) -> None:
    problem = None
    if not _MIN_PART_SIZE <= part_size <= _MAX_PART_SIZE:
        problem = f"part_size={part_size}: expected 5 MiB to 5 GiB (S3's limits)"
    elif max_attempts < 1:
        problem = f"max_attempts={max_attempts}: expected at least 1"
    elif backoff_s < 0:
        problem = f"backoff_s={backoff_s}: expected a non-negative number of seconds"
    elif timeout_s <= 0:
        problem = f"timeout_s={timeout_s}: expected a positive number of seconds"
    if problem:
        raise StoreError(f"S3Store: {problem}")


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, S3Error):
        return exc.code in _TRANSIENT_CODES or _is_transient_status(exc.response.status)
    if isinstance(exc, ServerError):
        return _is_transient_status(exc.status_code)
    if isinstance(exc, InvalidResponseError):
        return _is_transient_status(_response_status(exc))
    if isinstance(exc, urllib3.exceptions.SSLError | urllib3.exceptions.LocationValueError):
        return False  # a certificate or a malformed address does not fix itself
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def _is_transient_status(status: int | None) -> bool:
    return status is None or status >= 500 or status == 429


def _response_status(exc: InvalidResponseError) -> int | None:
    # minio keeps the status of a non-XML reply (an HTML page from a proxy) only here.
    status = getattr(exc, "_code", None)
    return status if isinstance(status, int) else None


def _describe(exc: BaseException) -> str:
    """The part of an S3 or network failure a user can act on, on one line."""
    if isinstance(exc, S3Error):
        return f"{exc.code}: {exc.message}"
    if isinstance(exc, ServerError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, InvalidResponseError):
        return f"HTTP {_response_status(exc)} with a reply that is not S3's"
    return one_line(_root_cause(exc))


def _root_cause(exc: BaseException) -> BaseException:
    # urllib3 wraps socket errors one or two levels deep, in __cause__ or in args.
    seen = {id(exc)}
    current = exc
    while True:
        inner = current.__cause__ or next(
            (arg for arg in current.args if isinstance(arg, BaseException)), None
        )
        if inner is None or id(inner) in seen:
            return current
        seen.add(id(inner))
        current = inner
