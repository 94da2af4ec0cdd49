"""Which replicas of a site's pools are alive, and how fast each one really serves.

The dispatcher knows the replicas only from their heartbeats: a replica is alive from its
first heartbeat until it has been silent for `timeout_s` (or a request to it finds nobody
subscribed). Each heartbeat carries counters since the replica started (requests answered,
seconds it held at least one), so a measurement is the difference between two of them: requests
answered per busy second, which is what one replica sustains, measured once at least
`min_answers` requests lie between the two. The table is immutable and every function here is
pure, so liveness and measurement are tested without a clock or a bus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from inferedge.core.resource_manager import ReplicasChanged, SiteEvent, ThroughputMeasured

MIN_ANSWERS = 100
"""Requests a throughput measurement spans at least: over 30, the mix of early and late exits
alone moved the measurement by 30 % between windows and the shares flapped."""


@dataclass(frozen=True)
class Beat:
    """What one heartbeat says (the wire message, validated, in plain values)."""

    pool: str
    replica: str
    answered: int
    busy_s: float


@dataclass(frozen=True)
class Replica:
    """One live replica: when it was last heard of, and the counters a measurement starts at."""

    pool: str
    name: str
    last_seen: float
    answered: int
    busy_s: float
    mark_answered: int
    mark_busy_s: float


@dataclass(frozen=True)
class Replicas:
    """Every live replica of the site, by name, and the version each pool serves."""

    versions: Mapping[str, str]
    live: Mapping[str, Replica] = field(default_factory=dict)

    def count(self, pool: str) -> int:
        """Live replicas of `pool`."""
        return sum(1 for r in self.live.values() if r.pool == pool)

    def of(self, pool: str) -> tuple[str, ...]:
        """The live replicas of `pool`, by name."""
        return tuple(sorted(n for n, r in self.live.items() if r.pool == pool))


def heard(
    table: Replicas, beat: Beat, now: float, min_answers: int = MIN_ANSWERS
) -> tuple[Replicas, list[SiteEvent]]:
    """The table after `beat` arrived at `now`, and what the resource manager must hear: the
    pool's new replica count when the replica is new (or restarted under its name, its counters
    back at zero), its measured throughput when enough requests lie since the last one."""
    if beat.pool not in table.versions:
        return table, []
    known = table.live.get(beat.replica)
    events: list[SiteEvent] = []
    if known is None or known.pool != beat.pool or beat.answered < known.answered:
        replica = Replica(
            beat.pool, beat.replica, now, beat.answered, beat.busy_s, beat.answered, beat.busy_s
        )
        live = {**table.live, beat.replica: replica}
        new = Replicas(table.versions, live)
        if known is not None and known.pool != beat.pool:
            events.append(ReplicasChanged(known.pool, new.count(known.pool)))
        if known is None or known.pool != beat.pool:
            events.append(ReplicasChanged(beat.pool, new.count(beat.pool)))
        return new, events
    replica = replace(known, last_seen=now, answered=beat.answered, busy_s=beat.busy_s)
    answered = beat.answered - known.mark_answered
    busy = beat.busy_s - known.mark_busy_s
    if answered >= min_answers and busy > 0:
        events.append(ThroughputMeasured(beat.pool, table.versions[beat.pool], answered / busy))
        replica = replace(replica, mark_answered=beat.answered, mark_busy_s=beat.busy_s)
    return Replicas(table.versions, {**table.live, beat.replica: replica}), events


def gone(table: Replicas, names: tuple[str, ...] | list[str]) -> tuple[Replicas, list[SiteEvent]]:
    """The table without the replicas `names` (silent too long, or found unsubscribed), and
    each affected pool's new replica count."""
    dropped = [table.live[n] for n in names if n in table.live]
    if not dropped:
        return table, []
    live = {n: r for n, r in table.live.items() if n not in names}
    new = Replicas(table.versions, live)
    pools = sorted({r.pool for r in dropped})
    return new, [ReplicasChanged(p, new.count(p)) for p in pools]


def silent(table: Replicas, now: float, timeout_s: float) -> list[str]:
    """The replicas not heard of for more than `timeout_s` at `now`."""
    return sorted(n for n, r in table.live.items() if now - r.last_seen > timeout_s)
