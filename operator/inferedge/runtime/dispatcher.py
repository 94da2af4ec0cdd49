"""A site's dispatcher: each request to one replica of one pool, by the decided shares.

The shares come from the resource manager (`core.resource_manager`), started from the site
file's exploration-table rows and fed what the heartbeats say (`core.site_replicas`): a
replica that appears or goes silent changes its pool's replica count, a pool measured off its
table row by more than the drift bound changes the row; each may change the shares, and every
decision is kept with its cause and time (`GET /distribution`). Each pool serves the one
version it was deployed with, so at run time the manager re-decides shares, not versions: a new
version is a new deployment of the pool. With `fixedShares` (a benchmark's comparison policy)
the shares stay as given.

A request goes to the pool `core.dispatch` picks (smooth weighted round robin, passing over
pools whose replicas' queues are full), and there to the replica holding the fewest. It is
sent again, to another replica, when the one it went to answers 503 (busy, not loaded), does
not answer within `request_timeout_s`, turns out unsubscribed, or goes silent (its heartbeats
stop) while holding it; so a replica that dies loses no request. When every replica is full
the request waits for room, up to `request_timeout_s`, and is refused 503 after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from inferedge.api.site import SiteConfig, SiteError, parse_heartbeat
from inferedge.core.dispatch import Dispatcher, pick, reshared
from inferedge.core.distribution import Distribution, Pool, VersionFigures
from inferedge.core.resource_manager import (
    ManagerSettings,
    ReplicasChanged,
    SiteEvent,
    SiteState,
    ThroughputMeasured,
    start,
    step,
)
from inferedge.core.site_replicas import Beat, Replicas, gone, heard, silent
from inferedge.runtime.oip import INFERENCE_HEADER, ErrorResponse
from inferedge.runtime.site_metrics import SiteMetrics
from inferedge.transport.client import Messenger
from inferedge.transport.codec import Payload
from inferedge.transport.errors import NoResponders, TransportError
from inferedge.transport.headers import ANSWER_STATUS
from inferedge.transport.subjects import replica_subject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """One decision of the shares: when (seconds since the dispatcher started), why, and what."""

    at_s: float
    at_unix: float
    cause: str
    shares: Mapping[str, float]
    rate: float
    met: bool
    reason: str


@dataclass(frozen=True)
class Forwarded:
    """A replica's answer (or the dispatcher's own refusal), as the HTTP reply carries it."""

    status: int
    payload: bytes
    json_length: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """The replica's reply headers (a pipeline's stage describes its activation in them)."""


def shares_of(distribution: Distribution) -> dict[str, float]:
    """Each pool's share of the stream."""
    return {a.pool: a.share for a in distribution.assignments}


class Site:
    """The dispatcher's state and its forwarding; the HTTP and NATS faces are thin."""

    def __init__(
        self,
        config: SiteConfig,
        messenger: Messenger,
        metrics: SiteMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._messenger = messenger
        self.metrics = metrics
        self._clock = clock
        self.started = clock()
        self.settings = ManagerSettings(
            config.min_accuracy, config.max_utilization, config.drift_bound
        )
        pools = [
            Pool(p.name, p.replicas, {p.version: VersionFigures(p.throughput, p.accuracy)})
            for p in config.pools
        ]
        self.state: SiteState = start(pools, config.target_rate, self.settings)
        self.fixed = config.fixed_shares
        self.dispatcher = Dispatcher(self.fixed or shares_of(self.state.distribution))
        self.replicas = Replicas({p.name: p.version for p in config.pools})
        self.queue_limit = {p.name: p.queue_limit for p in config.pools}
        self.in_flight: dict[str, int] = {}
        self._gone: dict[str, asyncio.Event] = {}
        self._room = asyncio.Condition()
        self.measured: dict[str, float] = {}
        self.answered: dict[str, int] = {}
        self.retried = 0
        self.settled = False
        """Whether replica counts reach the resource manager yet: not until every replica has
        had one beat timeout to report, or the first beats, arriving one by one, would each
        re-decide the shares (`pool p: 2 -> 1 -> 2 replicas` in the first second)."""
        self.decisions = [self._decision("start")]
        self.metrics.decided(self.dispatcher.shares)

    def _decision(self, cause: str) -> Decision:
        d = self.state.distribution
        at = self._clock() - self.started
        return Decision(at, time.time(), cause, shares_of(d), d.rate, d.met, d.reason)

    @property
    def ready(self) -> bool:
        """Whether some pool with a share has a live replica (a pipeline: every pool)."""
        if self.config.stages is not None:
            return all(self.replicas.count(s.pool) > 0 for s in self.config.stages)
        return any(
            share > 0 and self.replicas.count(pool) > 0
            for pool, share in self.dispatcher.shares.items()
        )

    def hear(self, events: list[SiteEvent]) -> None:
        """Feed the resource manager; follow the shares it decides."""
        for event in events:
            if isinstance(event, ReplicasChanged) and not self.settled:
                continue  # counted all at once when the site settles (`settle`)
            if isinstance(event, ThroughputMeasured):
                self.measured[event.pool] = event.throughput
            self.state, new = step(self.state, event, self.settings)
            # Fixed shares and a pipeline's stages are followed as given: nothing to decide.
            if new is not None and self.fixed is None and self.config.stages is None:
                self.dispatcher = reshared(self.dispatcher, shares_of(new))
                self.decisions.append(self._decision(self.state.cause))
                self.metrics.decided(self.dispatcher.shares)
                log.info("shares decided again (%s): %s", self.state.cause, shares_of(new))
        for pool in self.replicas.versions:
            self.metrics.replicas(pool, self.replicas.count(pool))

    async def take_beat(
        self, headers: Mapping[str, str], payload: Payload
    ) -> tuple[dict[str, str], bytes]:
        """`P.beat`: a replica's heartbeat; a bad one gets an error reply and is counted."""
        try:
            beat = parse_heartbeat(bytes(payload))
        except SiteError:
            self.metrics.bad_beat()
            raise
        known = beat.pool in self.replicas.versions
        self.replicas, events = heard(
            self.replicas, Beat(beat.pool, beat.replica, beat.answered, beat.busy_s), self._clock()
        )
        if not known:
            self.metrics.bad_beat()
            raise SiteError(f"heartbeat: pool {beat.pool!r} is not one of this site's")
        self._gone.setdefault(beat.replica, asyncio.Event())
        self.hear(events)
        async with self._room:
            self._room.notify_all()
        return {}, b"{}"

    def drop(self, names: list[str]) -> None:
        """The replicas `names` are gone: what they hold goes elsewhere."""
        self.replicas, events = gone(self.replicas, names)
        for name in names:
            event = self._gone.pop(name, None)
            if event is not None:
                event.set()
        self.hear(events)

    def settle(self) -> None:
        """From now on replica counts reach the resource manager: each pool's count now."""
        self.settled = True
        self.hear([ReplicasChanged(p, self.replicas.count(p)) for p in self.replicas.versions])

    async def sweep_forever(self) -> None:
        """Settle one heartbeat timeout after the start; then drop the replicas that went
        silent, a few times per heartbeat timeout."""
        while True:
            await asyncio.sleep(self.config.beat_timeout_s / 4)
            if not self.settled and self._clock() - self.started >= self.config.beat_timeout_s:
                self.settle()
            names = silent(self.replicas, self._clock(), self.config.beat_timeout_s)
            if names:
                log.warning("replicas silent past %gs: %s", self.config.beat_timeout_s, names)
                self.metrics.silent(len(names))
                self.drop(names)

    def _with_room(self, pool: str, tried: set[str]) -> str | None:
        """The replica of `pool` holding the fewest requests, if one has room."""
        left = [
            r
            for r in self.replicas.of(pool)
            if r not in tried and self.in_flight.get(r, 0) < self.queue_limit[pool]
        ]
        return min(left, key=lambda r: (self.in_flight.get(r, 0), r)) if left else None

    def _choose(self, tried: set[str]) -> tuple[str, str | None] | None:
        """The pool for the next attempt, and its replica with room. Decided shares pass a
        full pool over; fixed shares (a comparison policy) are followed strictly: the pool is
        kept, and the request waits for room there (replica None)."""
        queued: dict[str, int] = {}
        limits: dict[str, int] = {}
        for pool in self.replicas.versions:
            left = [r for r in self.replicas.of(pool) if r not in tried]
            queued[pool] = sum(self.in_flight.get(r, 0) for r in left)
            limits[pool] = len(left) * self.queue_limit[pool]
        if self.fixed is not None:
            queued = {p: 0 for p in queued}
            limits = {p: min(n, 1) for p, n in limits.items()}
        picked, self.dispatcher = pick(self.dispatcher, queued, limits)
        if picked is None:
            return None
        return picked, self._with_room(picked, tried)

    async def forward(self, body: bytes | bytearray, header: str | None) -> Forwarded:
        """Send one request until a replica answers it (or every attempt is spent)."""
        headers = {INFERENCE_HEADER: header} if header is not None else {}
        deadline = self._clock() + self.config.request_timeout_s
        tried: set[str] = set()
        attempts = 0
        while attempts < self.config.max_attempts:
            chosen = self._choose(tried)
            if chosen is None:
                if not await self._wait_for_room(deadline):
                    break
                continue
            pool, replica = chosen
            while replica is None:  # fixed shares: wait for room in the pool picked
                if not await self._wait_for_room(deadline):
                    self.metrics.answered("none", 503)
                    return Forwarded(503, _error(f"pool {pool} had no room in time"))
                replica = self._with_room(pool, tried)
            attempts += 1
            answer = await self._attempt(pool, replica, headers, bytes(body), tried)
            if answer is not None:
                return answer
        self.metrics.answered("none", 503)
        return Forwarded(503, _error("no replica of the site could take the request in time"))

    async def send_in_pool(
        self, pool: str, headers: Mapping[str, str], body: bytes
    ) -> Forwarded | None:
        """Send one message to a replica of `pool` until one answers it (a pipeline's stage):
        its answer, or None when no replica could take it in time. A replica that failed is
        tried again only once every live one has."""
        deadline = self._clock() + self.config.request_timeout_s
        tried: set[str] = set()
        attempts = 0
        while attempts < self.config.max_attempts:
            if tried >= set(self.replicas.of(pool)):
                tried = set()
            replica = self._with_room(pool, tried)
            if replica is None:
                if not await self._wait_for_room(deadline):
                    return None
                continue
            attempts += 1
            answer = await self._attempt(pool, replica, headers, body, tried)
            if answer is not None:
                return answer
        return None

    async def _attempt(
        self, pool: str, replica: str, headers: Mapping[str, str], body: bytes, tried: set[str]
    ) -> Forwarded | None:
        """One attempt, counted: the replica's answer, or None with `replica` marked tried."""
        answer = await self._send(pool, replica, headers, body)
        if answer is None:
            self.retried += 1
            tried.add(replica)
            return None
        self.metrics.answered(pool, answer.status)
        self.answered[pool] = self.answered.get(pool, 0) + 1
        return answer

    async def _wait_for_room(self, deadline: float) -> bool:
        left = deadline - self._clock()
        if left <= 0:
            return False
        async with self._room:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), left)
        return self._clock() < deadline

    async def _send(
        self, pool: str, replica: str, headers: Mapping[str, str], body: bytes
    ) -> Forwarded | None:
        """One attempt at `replica`: its answer, or None to try elsewhere."""
        subject = replica_subject(self.config.namespace, self.config.pipeline, pool, replica)
        gone_event = self._gone.setdefault(replica, asyncio.Event())
        self.in_flight[replica] = self.in_flight.get(replica, 0) + 1
        request = asyncio.ensure_future(
            self._messenger.request(subject, headers, body, timeout=self.config.request_timeout_s)
        )
        watch = asyncio.ensure_future(gone_event.wait())
        try:
            await asyncio.wait({request, watch}, return_when=asyncio.FIRST_COMPLETED)
            if not request.done():
                request.cancel()
                self.metrics.retried("replica_gone")
                return None
            reply_headers, payload = request.result()
        except NoResponders:
            self.metrics.retried("no_responders")
            self.drop([replica])
            return None
        except TransportError as exc:  # a timeout, a refusal of the bus, an error reply
            self.metrics.retried(type(exc).__name__)
            return None
        finally:
            watch.cancel()
            if not request.done():
                request.cancel()
            self.in_flight[replica] -= 1
            async with self._room:
                self._room.notify_all()
        status = _status(reply_headers.get(ANSWER_STATUS))
        if status == 503:
            self.metrics.retried("replica_busy")
            return None
        length = reply_headers.get(INFERENCE_HEADER, "")
        return Forwarded(
            status, bytes(payload), int(length) if length.isdigit() else None, reply_headers
        )


def _status(text: str | None) -> int:
    """A replica's answer status; a missing or odd one stands for a server error."""
    if text is not None and text.isdigit() and 200 <= int(text) <= 599:
        return int(text)
    return 502


def _error(message: str) -> bytes:
    return ErrorResponse(error=message).model_dump_json().encode()
