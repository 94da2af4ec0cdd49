"""Drivers for the CPU and GPU clocks: Linux cpufreq policies and the Jetson GPU's devfreq device.

A clock is pinned by writing the same frequency to its lower and upper limit, in the order that
never leaves the lower limit above the upper one: some kernels refuse such a write (cpufreq and
devfreq on JetPack 4's 4.9 kernel answer EINVAL), others quietly hold the clock at the upper
one. Every cpufreq policy is driven (one per cluster on Jetson Xavier and Orin, whose
`related_cpus` list its cores), not only cpu0's.

Units: cpufreq files hold kHz; devfreq files hold Hz. Everything here is in kHz.

A cpufreq policy without `scaling_available_frequencies` (intel_pstate, amd-pstate: drivers that
take any value between two bounds) is skipped with its reason in `Clocks.skipped`: the optimisers
search discrete steps, and a table made of the two bounds alone would make `pin` jump between
the extremes. Jetson boards always list their steps.

Writing needs root and a writable /sys: only the privileged node agent uses this module. Every
path is taken relative to an injectable root, so tests can build a fake sysfs tree.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from types import TracebackType
from typing import get_args

from inferedge.core.clock_wishes import ClockKind
from inferedge.core.errors import InferedgeError, one_line

GPU_DEVFREQ_NAMES = ("57000000.gpu", "17000000.gv11b", "17000000.ga10b", "17000000.gpu")
"""The Jetson GPUs' devfreq devices: Nano, Xavier, Orin (JetPack 5), Orin (JetPack 6)."""

# Where a devfreq device's own directory lies below sys/devices on the boards (gpu.0,
# 17000000.ga10b, platform/bus@0/17000000.gpu): bounded depths, since a recursive walk of
# /sys/devices visits tens of thousands of directories on a large server.
_DEVICE_DEPTHS = ("*", "*/*", "*/*/*")


class ClockError(InferedgeError):
    """A clock could not be read or set; the message is one line naming the file."""


@dataclass(frozen=True)
class _Files:
    """The file names of one kind of clock domain, and how many of its units make a kHz."""

    table: str
    min: str
    max: str
    per_khz: int


_FILES: dict[ClockKind, _Files] = {
    "cpu": _Files("scaling_available_frequencies", "scaling_min_freq", "scaling_max_freq", 1),
    "gpu": _Files("available_frequencies", "min_freq", "max_freq", 1000),
}


@dataclass(frozen=True)
class ClockDomain:
    """One frequency domain: a cpufreq policy (all its related_cpus) or a devfreq GPU."""

    kind: ClockKind
    name: str  # "policy0", "17000000.gv11b"
    path: Path  # the policy / devfreq directory
    frequencies_khz: tuple[int, ...]  # ascending, deduplicated, from the available list
    cpus: tuple[int, ...]  # related_cpus of a cpufreq policy; () for a GPU
    default_min_khz: int  # scaling_min_freq / min_freq as found at discovery
    default_max_khz: int

    def __post_init__(self) -> None:
        where = self.path
        if self.kind not in get_args(ClockKind):
            raise ClockError(f"{where}: kind: expected 'cpu' or 'gpu', got {self.kind!r}")
        table = self.frequencies_khz
        if not table or table[0] <= 0 or any(b <= a for a, b in pairwise(table)):
            raise ClockError(
                f"{where}: frequencies_khz: expected positive kHz, strictly ascending, "
                f"got {table!r}"
            )
        if not 0 < self.default_min_khz <= self.default_max_khz:
            raise ClockError(
                f"{where}: expected 0 < default min <= default max, got "
                f"{self.default_min_khz} and {self.default_max_khz} kHz"
            )


class Clocks:
    """The clock domains of one node, pinned and restored through sysfs.

    Usable as a context manager that restores every domain's defaults on exit.
    """

    def __init__(self, domains: Sequence[ClockDomain], skipped: Sequence[str] = ()) -> None:
        names = [domain.name for domain in domains]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ClockError(f"domains: expected unique names, got {', '.join(duplicated)} twice")
        self._domains = tuple(domains)
        self._skipped = tuple(skipped)

    @property
    def domains(self) -> tuple[ClockDomain, ...]:
        """Every domain found, CPU policies first."""
        return self._domains

    @property
    def skipped(self) -> tuple[str, ...]:
        """One line per domain found but not usable, naming the file and why."""
        return self._skipped

    def table(self, kind: ClockKind) -> tuple[int, ...]:
        """The frequencies (kHz) one can ask for on `kind`: the union of its domains' tables,
        ascending; () when the node has no such domain."""
        _check_kind(kind)
        return tuple(sorted({f for d in self._of(kind) for f in d.frequencies_khz}))

    def pin(self, kind: ClockKind, khz: int) -> dict[str, int]:
        """Pin every domain of `kind` to its highest available frequency <= khz (its lowest
        when khz is below them all), writing min/max in the order that never makes min > max.
        Returns {domain name: kHz pinned}. Raises ClockError (one line) when a write is
        refused; the domains already pinned stay pinned, nothing is left with min > max."""
        _check_kind(kind)
        if isinstance(khz, bool) or not isinstance(khz, int) or khz <= 0:
            raise ClockError(f"khz: expected a positive whole number of kHz, got {khz!r}")
        pinned: dict[str, int] = {}
        for domain in self._of(kind):
            table = domain.frequencies_khz
            target = table[max(bisect.bisect_right(table, khz) - 1, 0)]
            _set_limits(domain, target, target)
            pinned[domain.name] = target
        return pinned

    def restore(self) -> None:
        """Write every domain's default min and max back (safe order); tries all domains and
        raises one ClockError naming every failure at the end."""
        failures = []
        for domain in self._domains:
            try:
                _set_limits(domain, domain.default_min_khz, domain.default_max_khz)
            except ClockError as exc:
                failures.append(f"{domain.name}: {exc}")
        if failures:
            raise ClockError(f"restore failed on {len(failures)} domain(s): {'; '.join(failures)}")

    def with_defaults(self, defaults: Mapping[str, tuple[int, int]]) -> Clocks:
        """The same domains with other defaults, (min kHz, max kHz) by domain name; a domain
        not named keeps its own. ClockError (one line) when a pair is not 0 < min <= max."""
        domains = [
            replace(d, default_min_khz=defaults[d.name][0], default_max_khz=defaults[d.name][1])
            if d.name in defaults
            else d
            for d in self._domains
        ]
        return Clocks(domains, self._skipped)

    def __enter__(self) -> Clocks:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.restore()

    def _of(self, kind: ClockKind) -> tuple[ClockDomain, ...]:
        return tuple(domain for domain in self._domains if domain.kind == kind)


def discover_clocks(root: Path = Path("/")) -> Clocks:
    """Every cpufreq policy (sys/devices/system/cpu/cpufreq/policy*, so each cpu is covered
    once via related_cpus, not only cpu0) and the Jetson GPU devfreq device found by glob:
    Nano 57000000.gpu, Xavier 17000000.gv11b, Orin 17000000.ga10b (17000000.gpu on JetPack 6),
    under sys/class/devfreq/ and sys/devices/{1 to 3 levels}/devfreq/. Missing or unreadable
    ones are skipped, with their reasons in `skipped`; a node with none gives Clocks(())."""
    domains: list[ClockDomain] = []
    skipped: list[str] = []

    def add(kind: ClockKind, path: Path, cpus: tuple[int, ...] | None) -> None:
        try:
            domains.append(_read_domain(kind, path, cpus))
        except ClockError as exc:
            skipped.append(str(exc))

    policies = root.glob("sys/devices/system/cpu/cpufreq/policy*")
    for policy in sorted(policies, key=lambda p: (len(p.name), p.name)):
        add("cpu", policy, None)
    for gpu in _gpu_devfreq_dirs(root):
        add("gpu", gpu, ())
    return Clocks(domains, skipped)


def _gpu_devfreq_dirs(root: Path) -> list[Path]:
    """The GPU's devfreq directory, once per device name: /sys/class/devfreq links to it."""
    found: dict[str, Path] = {}
    for name in GPU_DEVFREQ_NAMES:
        patterns = [f"sys/class/devfreq/{name}"]
        patterns += [f"sys/devices/{depth}/devfreq/{name}" for depth in _DEVICE_DEPTHS]
        for pattern in patterns:
            for path in sorted(root.glob(pattern)):
                if path.is_dir():
                    found.setdefault(name, path)
    return list(found.values())


def _read_domain(kind: ClockKind, path: Path, cpus: tuple[int, ...] | None) -> ClockDomain:
    files = _FILES[kind]
    table_file = path / files.table
    if not table_file.exists():
        raise ClockError(
            f"{table_file}: missing: the driver lists no frequency steps "
            "(e.g. intel_pstate); domain skipped"
        )
    table = tuple(sorted(set(_read_khz(table_file, files.per_khz))))
    if not table:
        raise ClockError(f"{table_file}: expected frequencies, got an empty list")
    if cpus is None:
        cpus = _read_ints(path / "related_cpus", minimum=0)
        if not cpus:
            raise ClockError(f"{path / 'related_cpus'}: expected cpu numbers, got none")
    return ClockDomain(
        kind=kind,
        name=path.name,
        path=path,
        frequencies_khz=table,
        cpus=cpus,
        default_min_khz=_read_one_khz(path / files.min, files.per_khz),
        default_max_khz=_read_one_khz(path / files.max, files.per_khz),
    )


def _set_limits(domain: ClockDomain, low_khz: int, high_khz: int) -> None:
    """Write a domain's min and max so that min <= max holds after each write.

    Only the current max decides the order: if the new min lies above it, raise max first;
    otherwise lower (or keep) min first, then max.
    """
    files = _FILES[domain.kind]
    current_max = _read_one_khz(domain.path / files.max, files.per_khz)
    writes = [(files.min, low_khz), (files.max, high_khz)]
    if low_khz > current_max:
        writes.reverse()
    for name, khz in writes:
        path = domain.path / name
        value = khz * files.per_khz
        try:
            path.write_text(f"{value}\n")
        except OSError as exc:
            raise ClockError(f"cannot write {value} to {path}: {_reason(exc)}") from None


def _read_one_khz(path: Path, per_khz: int) -> int:
    values = _read_khz(path, per_khz)
    if len(values) != 1:
        raise ClockError(f"{path}: expected one frequency, got {len(values)}")
    return values[0]


def _read_khz(path: Path, per_khz: int) -> tuple[int, ...]:
    values = _read_ints(path, minimum=1)
    inexact = [value for value in values if value % per_khz]
    if inexact:
        raise ClockError(f"{path}: expected whole kHz, got {inexact[0]} Hz")
    return tuple(value // per_khz for value in values)


def _read_ints(path: Path, minimum: int) -> tuple[int, ...]:
    """The whitespace-separated integers of a sysfs file, each at least `minimum`."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ClockError(f"cannot read {path}: {_reason(exc)}") from None
    except ValueError:  # not UTF-8
        raise ClockError(f"{path}: expected integers, got binary content") from None
    try:
        values = tuple(int(word) for word in text.split())
    except ValueError:
        raise ClockError(f"{path}: expected integers, got {text.strip()[:60]!r}") from None
    if any(value < minimum for value in values):
        raise ClockError(f"{path}: expected integers >= {minimum}, got {text.strip()[:60]!r}")
    return values


def _check_kind(kind: str) -> None:
    if kind not in get_args(ClockKind):
        raise ClockError(f"kind: expected 'cpu' or 'gpu', got {kind!r}")


def _reason(exc: OSError) -> str:
    return exc.strerror or one_line(exc)
