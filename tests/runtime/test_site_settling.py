"""A dispatcher's first second: replicas' first heartbeats arrive one by one, and the shares are
decided again only once every replica has had a heartbeat timeout to report."""

from __future__ import annotations

import pytest

from inferedge.api.site import Heartbeat, SiteConfig, SitePool
from inferedge.runtime.dispatcher import Site
from inferedge.runtime.site_metrics import SiteMetrics
from inferedge.transport.client import Messenger


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _site(messenger: Messenger, clock: Clock) -> Site:
    config = SiteConfig(
        namespace="default",
        pipeline="main",
        input_shape=(3, 16, 16),
        target_rate=20,
        pools=(
            SitePool(name="a", version="v", replicas=2, throughput=10, accuracy=0.9),
            SitePool(name="b", version="v", replicas=1, throughput=10, accuracy=0.9),
        ),
    )
    return Site(config, messenger, SiteMetrics(), clock=clock)


async def _beat(site: Site, pool: str, replica: str) -> None:
    beat = Heartbeat(pool=pool, replica=replica, plan_hash="ab" * 8, in_flight=0, answered=0,
                     busy_s=0.0, interval_s=0.5)  # fmt: skip
    await site.take_beat({}, beat.model_dump_json(by_alias=True).encode())


@pytest.mark.asyncio
async def test_first_beats_decide_nothing_until_the_site_settles(messenger: Messenger) -> None:
    clock = Clock()
    site = _site(messenger, clock)
    await _beat(site, "a", "a-0")
    await _beat(site, "b", "b-0")
    await _beat(site, "a", "a-1")
    assert [d.cause for d in site.decisions] == ["start"]
    clock.now += site.config.beat_timeout_s
    site.settle()
    # Every replica the site file promised reported: nothing to decide again.
    assert [d.cause for d in site.decisions] == ["start"]
    site.drop(["a-1"])
    assert [d.cause for d in site.decisions] == ["start", "pool a: 2 -> 1 replicas"]


@pytest.mark.asyncio
async def test_a_replica_missing_when_the_site_settles_is_decided_then(
    messenger: Messenger,
) -> None:
    clock = Clock()
    site = _site(messenger, clock)
    await _beat(site, "a", "a-0")
    site.drop(["a-0"])  # found gone before settling: counted at settling, not now
    await _beat(site, "b", "b-0")
    assert [d.cause for d in site.decisions] == ["start"]
    site.settle()
    assert [d.cause for d in site.decisions] == ["start", "pool a: 2 -> 0 replicas"]
    assert site.dispatcher.shares.get("a", 0.0) == 0.0
