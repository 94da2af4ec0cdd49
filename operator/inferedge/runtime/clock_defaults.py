"""The clocks' defaults as the first agent of a boot found them, kept beside its socket.

An agent that is killed (SIGKILL, the OOM killer, its pod deleted with no grace) cannot put back
the clocks it pinned, and the next agent would find those pinned limits and take them for the
defaults: the node would stay slow until a reboot. So while an agent runs, each domain's
min and max as first found are kept in `clock-defaults.json` in the socket's directory (a
hostPath that outlives the pod; the chart's /run/inferedge is a tmpfs, cleared by the reboot
that also resets the clocks), with the kernel's boot id. An agent that finds that file from
the same boot, naming the same domains, restores those defaults instead of what it found. After
a clean stop (the defaults written back) the file is removed: an administrator who changes the
limits afterwards (nvpmodel changes them) is not overruled by a stale record.

The file is root's (0600) and read like any input: one that does not parse, belongs to another
boot or names other domains is replaced by what is found now, with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inferedge.core.errors import describe_validation_error
from inferedge.runtime.clocks import ClockError, Clocks

log = logging.getLogger(__name__)

FILE_NAME: Final = "clock-defaults.json"
MAX_FILE_BYTES: Final = 64 * 1024
BOOT_ID: Final = Path("/proc/sys/kernel/random/boot_id")


class _Limits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min_khz: int = Field(gt=0)
    max_khz: int = Field(gt=0)


class DefaultsRecord(BaseModel):
    """What `clock-defaults.json` holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    boot_id: str = Field(min_length=1, max_length=64)
    domains: dict[str, _Limits] = Field(max_length=256)


def boot_id(path: Path = BOOT_ID) -> str | None:
    """The kernel's id of this boot (the same in every container of the node); None, with a
    warning, where it cannot be read."""
    try:
        found = path.read_text()[:64].strip()
    except OSError as exc:
        log.warning("%s: cannot read (%s): the default clocks are not recorded", path, exc)
        return None
    return found or None


@contextmanager
def recorded_defaults(clocks: Clocks, directory: Path, boot: str | None) -> Iterator[Clocks]:
    """`clocks` with this boot's recorded defaults (recording the ones found if none are),
    for as long as the agent runs; the record is removed when the block ends without an error.
    Without a boot id nothing is recorded (a record could outlive a reboot)."""
    if boot is None:
        yield clocks
        return
    path = directory / FILE_NAME
    found = {d.name: (d.default_min_khz, d.default_max_khz) for d in clocks.domains}
    recorded = _read(path, boot, set(found))
    if recorded is not None and recorded != found:
        log.warning(
            "an earlier agent of this boot left the clocks pinned: restoring the defaults it "
            "found (%s)", _describe(recorded),
        )  # fmt: skip
    try:
        with_recorded = clocks if recorded is None else clocks.with_defaults(recorded)
    except ClockError as exc:
        log.warning("%s: not usable (%s); using the limits found now", path, exc)
        recorded, with_recorded = None, clocks
    if recorded is None:
        _write(path, boot, found)
    yield with_recorded
    path.unlink(missing_ok=True)


def _read(path: Path, boot: str, names: set[str]) -> dict[str, tuple[int, int]] | None:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("%s: cannot read (%s); using the limits found now", path, exc.strerror)
        return None
    if len(data) > MAX_FILE_BYTES:
        log.warning("%s: over %d bytes; using the limits found now", path, MAX_FILE_BYTES)
        return None
    try:
        record = DefaultsRecord.model_validate_json(data)
    except ValidationError as exc:
        log.warning("%s; using the limits found now", describe_validation_error(exc, str(path)))
        return None
    if record.boot_id != boot:
        return None  # a record from an earlier boot: the reboot reset the clocks
    if set(record.domains) != names:
        log.warning(
            "%s: names domains %s, this node has %s; using the limits found now",
            path, sorted(record.domains), sorted(names),
        )  # fmt: skip
        return None
    return {name: (d.min_khz, d.max_khz) for name, d in record.domains.items()}


def _write(path: Path, boot: str, defaults: dict[str, tuple[int, int]]) -> None:
    record = DefaultsRecord(
        boot_id=boot,
        domains={name: _Limits(min_khz=lo, max_khz=hi) for name, (lo, hi) in defaults.items()},
    )
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(record.model_dump_json())
        os.replace(partial, path)
    except OSError as exc:  # serving goes on; only a crash would then leave clocks pinned
        log.warning("%s: cannot record the default clocks (%s)", path, exc.strerror)


def _describe(defaults: dict[str, tuple[int, int]]) -> str:
    return ", ".join(f"{name} {lo}..{hi} kHz" for name, (lo, hi) in sorted(defaults.items()))
