"""The two roles a device class, a part of the network or a server plays."""

from __future__ import annotations

from typing import Final, Literal

Role = Literal["edge", "cloud"]
"""edge runs the first part, near the data; cloud runs the rest."""

ROLES: Final[tuple[Role, Role]] = ("edge", "cloud")
