"""Prometheus metrics of a site's dispatcher, in a registry of its own.

- `inferedge_site_requests_total{pool,status}`: requests answered, by the pool that answered
  (`none` when no replica could) and the HTTP status;
- `inferedge_site_retries_total{reason}`: attempts given up on a replica and sent elsewhere
  (`replica_busy`, `replica_gone`, `no_responders`, `RequestTimeout`, ...);
- `inferedge_site_share{pool}` and `inferedge_site_replicas{pool}`: the shares followed now and
  each pool's live replicas; `inferedge_site_decisions_total`: the shares decided;
- `inferedge_site_silent_replicas_total` and `inferedge_site_bad_heartbeats_total`;
- `inferedge_site_refused_total{reason}`: requests refused before any replica saw them (a bad
  path, a body too large), logged at most once per reason every 10 s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from inferedge.transport.refusals import RateLimitedLog


class SiteMetrics:
    """The dispatcher's series."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._requests = Counter(
            "inferedge_site_requests", "Requests answered", ["pool", "status"], registry=r
        )
        self._retries = Counter(
            "inferedge_site_retries", "Attempts sent elsewhere", ["reason"], registry=r
        )
        self._share = Gauge("inferedge_site_share", "Share followed", ["pool"], registry=r)
        self._replicas = Gauge("inferedge_site_replicas", "Live replicas", ["pool"], registry=r)
        self._decisions = Counter("inferedge_site_decisions", "Shares decided", registry=r)
        self._silent = Counter(
            "inferedge_site_silent_replicas", "Replicas dropped as silent", registry=r
        )
        self._bad_beats = Counter("inferedge_site_bad_heartbeats", "Heartbeats refused", registry=r)
        self._refused = Counter(
            "inferedge_site_refused", "Requests refused", ["reason"], registry=r
        )
        self._refusal_log = RateLimitedLog(logging.getLogger("inferedge.runtime.dispatcher"))

    def refused(self, reason: str, message: str) -> None:
        """One request refused before any replica saw it."""
        self._refused.labels(reason=reason).inc()
        self._refusal_log(reason, message)

    def answered(self, pool: str, status: int) -> None:
        """One request answered by `pool` with `status`."""
        self._requests.labels(pool=pool, status=str(status)).inc()

    def retried(self, reason: str) -> None:
        """One attempt given up and sent elsewhere."""
        self._retries.labels(reason=reason).inc()

    def decided(self, shares: Mapping[str, float]) -> None:
        """New shares are followed."""
        self._decisions.inc()
        for pool, share in shares.items():
            self._share.labels(pool=pool).set(share)

    def replicas(self, pool: str, count: int) -> None:
        """`pool` has `count` live replicas."""
        self._replicas.labels(pool=pool).set(count)

    def silent(self, count: int) -> None:
        """`count` replicas went silent."""
        self._silent.inc(count)

    def bad_beat(self) -> None:
        """A heartbeat was refused."""
        self._bad_beats.inc()

    def exposition(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self.registry)
