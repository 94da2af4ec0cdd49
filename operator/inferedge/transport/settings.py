"""Where NATS is and how to sign in, read from the environment, never from code.

- `INFEREDGE_NATS_URL`: the server, e.g. `nats://nats.inferedge.svc:4222` (default
  `nats://127.0.0.1:4222`); several may be given, separated by commas.
- `INFEREDGE_NATS_CREDS`: a `.creds` file (user JWT + NKey seed), e.g. a mounted Secret.
- `INFEREDGE_NATS_USER` and `INFEREDGE_NATS_PASSWORD`: a user and password.
- `INFEREDGE_NATS_TOKEN`: a token.
- `INFEREDGE_NATS_INBOX_PREFIX`: where this client's reply inboxes live (default nats-py's
  `_INBOX`); a server that authorizes identities allows each only its own prefix, e.g.
  `_INBOX.inferedge.edge` (see `inferedge.core.identities`).

At most one way of signing in may be set. Secrets never appear in repr() or in errors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from inferedge.transport.errors import TransportError

ENV_URL: Final = "INFEREDGE_NATS_URL"
ENV_CREDS: Final = "INFEREDGE_NATS_CREDS"
ENV_USER: Final = "INFEREDGE_NATS_USER"
ENV_PASSWORD: Final = "INFEREDGE_NATS_PASSWORD"
ENV_TOKEN: Final = "INFEREDGE_NATS_TOKEN"
ENV_INBOX_PREFIX: Final = "INFEREDGE_NATS_INBOX_PREFIX"
DEFAULT_URL: Final = "nats://127.0.0.1:4222"
_SCHEMES: Final = frozenset({"nats", "tls", "ws", "wss"})
# Subject tokens without wildcards or whitespace, joined by single dots.
_PREFIX = re.compile(r"[^.*>\s]+(\.[^.*>\s]+)*")


class SettingsError(TransportError):
    """The NATS settings in the environment are incomplete or contradictory."""


@dataclass(frozen=True)
class NatsSettings:
    """The servers to connect to and, optionally, one way of signing in."""

    servers: tuple[str, ...] = (DEFAULT_URL,)
    creds_file: Path | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    inbox_prefix: str | None = None

    def __post_init__(self) -> None:
        if not self.servers:
            raise SettingsError(f"{ENV_URL}: expected at least one nats:// URL")
        for url in self.servers:
            _check_url(url)
        ways = [self.creds_file is not None, self.user is not None, self.token is not None]
        if sum(ways) > 1:
            raise SettingsError(
                f"set only one of {ENV_CREDS}, {ENV_USER}/{ENV_PASSWORD} or {ENV_TOKEN}"
            )
        if (self.user is None) != (self.password is None):
            raise SettingsError(f"set both {ENV_USER} and {ENV_PASSWORD}, or neither")
        if self.creds_file is not None and not self.creds_file.is_file():
            raise SettingsError(f"{ENV_CREDS}: {self.creds_file} is not a readable file")
        if self.inbox_prefix is not None and not _PREFIX.fullmatch(self.inbox_prefix):
            raise SettingsError(
                f"{ENV_INBOX_PREFIX}: {self.inbox_prefix[:80]!r}: expected subject tokens "
                "joined by dots, without wildcards or spaces, e.g. _INBOX.inferedge.edge"
            )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, url: str | None = None
    ) -> NatsSettings:
        """Settings from the INFEREDGE_NATS_* variables; an explicit `url` wins over theirs."""
        values = os.environ if env is None else env
        servers = url or values.get(ENV_URL) or DEFAULT_URL
        creds = values.get(ENV_CREDS) or None
        return cls(
            servers=tuple(part.strip() for part in servers.split(",") if part.strip()),
            creds_file=Path(creds) if creds else None,
            user=values.get(ENV_USER) or None,
            password=values.get(ENV_PASSWORD) or None,
            token=values.get(ENV_TOKEN) or None,
            inbox_prefix=values.get(ENV_INBOX_PREFIX) or None,
        )

    def connect_options(self) -> dict[str, Any]:
        """The keyword arguments of nats-py's connect() for the servers and signing in."""
        options: dict[str, Any] = {"servers": list(self.servers)}
        if self.creds_file is not None:
            options["user_credentials"] = str(self.creds_file)
        if self.user is not None:
            options["user"] = self.user
            options["password"] = self.password
        if self.token is not None:
            options["token"] = self.token
        if self.inbox_prefix is not None:
            options["inbox_prefix"] = self.inbox_prefix
        return options

    @property
    def signs_in(self) -> str:
        """How this client signs in, for messages (never the secret itself)."""
        if self.creds_file is not None:
            return f"with the credentials file {self.creds_file} ({ENV_CREDS})"
        if self.user is not None:
            return f"as user {self.user!r} ({ENV_USER}/{ENV_PASSWORD})"
        if self.token is not None:
            return f"with a token ({ENV_TOKEN})"
        return f"without credentials (set {ENV_USER}/{ENV_PASSWORD}, {ENV_TOKEN} or {ENV_CREDS})"


def _check_url(url: str) -> None:
    shown = repr(url.rpartition("@")[2])  # without user info, which may hold a secret
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # parsing the port raises ValueError when it is not a number
    except ValueError as exc:
        raise SettingsError(f"{ENV_URL}: {shown}: {exc}") from exc
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise SettingsError(
            f"{ENV_URL}: {shown}: expected nats://HOST:PORT (or tls://, ws://, wss://)"
        )
    if parts.password:
        raise SettingsError(
            f"{ENV_URL}: put the password in {ENV_PASSWORD}, not in the URL (it would be logged)"
        )
