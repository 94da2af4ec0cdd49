"""Where an S3 store is and how to sign in, read from the environment, never from code."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from inferedge.storage.base import StoreError

ENV_ACCESS_KEY = "INFEREDGE_S3_ACCESS_KEY"
ENV_SECRET_KEY = "INFEREDGE_S3_SECRET_KEY"
ENV_CREDENTIALS_FILE = "INFEREDGE_S3_CREDENTIALS_FILE"
ENV_ENDPOINT = "INFEREDGE_S3_ENDPOINT"
ENV_REGION = "INFEREDGE_S3_REGION"
AWS_ACCESS_KEY = "AWS_ACCESS_KEY_ID"
AWS_SECRET_KEY = "AWS_SECRET_ACCESS_KEY"

DEFAULT_ENDPOINT = "https://s3.amazonaws.com"
DEFAULT_REGION = "us-east-1"

# The key names of a Kubernetes Secret mounted as a directory, or of the JSON file form.
SECRET_ACCESS_KEY = "accessKey"
SECRET_SECRET_KEY = "secretKey"


@dataclass(frozen=True)
class S3Credentials:
    """An access key pair. The secret never appears in repr() or in error messages."""

    access_key: str
    secret_key: str = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Credentials:
        """Credentials from, in order: INFEREDGE_S3_ACCESS_KEY/INFEREDGE_S3_SECRET_KEY, the file
        named by INFEREDGE_S3_CREDENTIALS_FILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.

        The project's own variables win over the generic AWS ones, which a machine may carry
        for unrelated tools. StoreError names the variables to set when none are.
        """
        values = os.environ if env is None else env
        pair = _key_pair(values, ENV_ACCESS_KEY, ENV_SECRET_KEY)
        if pair is not None:
            return cls(*pair)
        credentials_file = values.get(ENV_CREDENTIALS_FILE, "")
        if credentials_file:
            return cls.from_file(Path(credentials_file))
        pair = _key_pair(values, AWS_ACCESS_KEY, AWS_SECRET_KEY)
        if pair is not None:
            return cls(*pair)
        raise StoreError(
            f"no S3 credentials: set {ENV_ACCESS_KEY} and {ENV_SECRET_KEY} "
            f"(or {AWS_ACCESS_KEY} and {AWS_SECRET_KEY}), or {ENV_CREDENTIALS_FILE} "
            "to a mounted Secret directory or a JSON file"
        )

    @classmethod
    def from_file(cls, path: Path) -> S3Credentials:
        """Credentials from a mounted Kubernetes Secret (a directory holding files `accessKey`
        and `secretKey`) or a JSON file `{"accessKey": ..., "secretKey": ...}`."""
        where = f"{ENV_CREDENTIALS_FILE}={str(path)!r}"
        if path.is_dir():
            values = {name: _read_secret_file(path / name, where) for name in _SECRET_NAMES}
        elif path.is_file():
            values = _read_json_secret(path, where)
        else:
            raise StoreError(f"{where}: no such file or directory")
        return cls(values[SECRET_ACCESS_KEY], values[SECRET_SECRET_KEY])


@dataclass(frozen=True)
class S3Settings:
    """Everything but the bucket needed to reach an S3 store."""

    endpoint: str
    secure: bool
    region: str
    credentials: S3Credentials

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Settings:
        """Settings from INFEREDGE_S3_ENDPOINT (default AWS), INFEREDGE_S3_REGION (default
        us-east-1) and the credentials variables (see `S3Credentials.from_env`)."""
        values = os.environ if env is None else env
        endpoint, secure = parse_endpoint(values.get(ENV_ENDPOINT) or DEFAULT_ENDPOINT)
        return cls(
            endpoint=endpoint,
            secure=secure,
            region=values.get(ENV_REGION) or DEFAULT_REGION,
            credentials=S3Credentials.from_env(values),
        )


def parse_endpoint(value: str) -> tuple[str, bool]:
    """`(host[:port], secure)` from `http://host:port`, `https://host` or a bare `host:port`.

    The scheme decides TLS; a bare host uses TLS, the safe default (write `http://` for a
    plain-text MinIO inside a cluster).
    """
    text = value.strip()
    parts = urlsplit(text if "://" in text else f"//{text}")
    expected = "expected host:port or http(s)://host:port"
    problem = None
    if parts.scheme not in ("", "http", "https"):
        problem = f"unsupported scheme {parts.scheme!r}"
    elif not parts.hostname:
        problem = "no host"
    elif parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        problem = "no path, query or user part allowed"
    else:
        try:
            parts.port  # noqa: B018  (raises ValueError for a port out of range or not a number)
        except ValueError:
            problem = "invalid port"
    if problem:
        raise StoreError(f"{ENV_ENDPOINT}={value!r}: {problem}; {expected}")
    return parts.netloc, parts.scheme != "http"


_SECRET_NAMES = (SECRET_ACCESS_KEY, SECRET_SECRET_KEY)


def _key_pair(
    values: Mapping[str, str], access_var: str, secret_var: str
) -> tuple[str, str] | None:
    access, secret = values.get(access_var, ""), values.get(secret_var, "")
    if not access and not secret:
        return None
    if not access or not secret:
        missing = access_var if not access else secret_var
        present = secret_var if not access else access_var
        raise StoreError(f"{present} is set but {missing} is not: set both or neither")
    return access, secret


def _read_secret_file(path: Path, where: str) -> str:
    try:
        # Secrets created from files often end with a newline that is not part of the key.
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise StoreError(
            f"{where}: expected files {SECRET_ACCESS_KEY!r} and {SECRET_SECRET_KEY!r} "
            f"in the directory, {path.name!r} is missing"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{where}: cannot read {path.name!r} ({type(exc).__name__})") from exc
    if not value:
        raise StoreError(f"{where}: {path.name!r} is empty")
    return value


def _read_json_secret(path: Path, where: str) -> dict[str, str]:
    expected = f'expected a JSON object {{"{SECRET_ACCESS_KEY}": ..., "{SECRET_SECRET_KEY}": ...}}'
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{where}: cannot read the file ({type(exc).__name__})") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        # Only the position, never the text around it: that could be the secret.
        raise StoreError(
            f"{where}: {expected} (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from exc
    if not isinstance(document, dict):
        raise StoreError(f"{where}: {expected}")
    values = {}
    for name in _SECRET_NAMES:
        value = document.get(name)
        if not isinstance(value, str) or not value:
            raise StoreError(f"{where}: {name!r} missing or not a non-empty string; {expected}")
        values[name] = value
    return values
