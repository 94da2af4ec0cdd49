"""The link estimate follows the `step` trace from noisy offloads and probes, stays put on a
steady link, and drops samples that are not measurements."""

from __future__ import annotations

import math
import random

import pytest

from inferedge.core.link import Link
from inferedge.core.link_trace import builtin_trace
from inferedge.runtime.link_estimator import LinkEstimator

ACTIVATION = 100_000  # bytes per offload


def transfer_ms(link: Link, rng: random.Random) -> float:
    """What an offload measures on `link`: an RTT and the serialisation, both with 10 % noise."""
    wire = ACTIVATION * 8.0 / (link.bandwidth_mbps * 1e3)
    return (link.rtt_ms + wire) * math.exp(rng.gauss(0.0, 0.1))


def test_the_estimate_follows_the_step_trace_within_a_few_offloads() -> None:
    trace = builtin_trace("step", 300.0, rtt_ms=40.0)
    estimator = LinkEstimator(Link(bandwidth_mbps=50.0, rtt_ms=10.0))
    rng = random.Random(1)
    errors_late_in_each_third: list[float] = []
    changed_at = []
    for i in range(300):  # one offload and one probe a second
        link = trace.at(float(i))
        estimator.probe(link.rtt_ms * math.exp(rng.gauss(0.0, 0.1)))
        if estimator.offload(ACTIVATION, transfer_ms(link, rng)):
            changed_at.append(i)
        if i % 100 >= 30:
            estimate = estimator.estimate.bandwidth_mbps
            errors_late_in_each_third.append(abs(estimate / link.bandwidth_mbps - 1))
    assert max(errors_late_in_each_third) < 0.25
    # the drop to 1 Mbps and the rise to 8 are each seen within 15 offloads
    assert any(100 <= i < 115 for i in changed_at), changed_at
    assert any(200 <= i < 215 for i in changed_at), changed_at
    assert estimator.estimate.rtt_ms == pytest.approx(40.0, rel=0.1)


def test_a_steady_noisy_link_gives_a_steady_estimate() -> None:
    link = Link(bandwidth_mbps=8.0, rtt_ms=30.0)
    estimator = LinkEstimator(link)
    rng = random.Random(2)
    for _ in range(1000):
        estimator.probe(link.rtt_ms * math.exp(rng.gauss(0.0, 0.1)))
        estimator.offload(ACTIVATION, transfer_ms(link, rng))
    assert estimator.changes <= 2  # ADWIN's delta bounds false alarms, it does not forbid them
    assert estimator.estimate.bandwidth_mbps == pytest.approx(8.0, rel=0.1)


def test_before_any_sample_the_declared_link_stands_and_bad_samples_are_dropped() -> None:
    declared = Link(bandwidth_mbps=8.0, rtt_ms=30.0)
    estimator = LinkEstimator(declared)
    assert estimator.estimate == declared
    assert not estimator.offload(0, 10.0)
    assert not estimator.offload(ACTIVATION, float("nan"))
    assert not estimator.offload(ACTIVATION, -1.0)
    assert not estimator.probe(float("inf"))
    assert estimator.dropped == {"bytes": 1, "transfer_ms": 2, "rtt_ms": 1}
    assert estimator.estimate == declared
    # a transfer no longer than the RTT says "fast", not "infinitely fast"
    estimator.offload(ACTIVATION, 1.0)
    assert math.isfinite(estimator.estimate.bandwidth_mbps)
    with pytest.raises(ValueError, match="delta: expected 0 < delta < 1"):
        LinkEstimator(declared, delta=1.5)


def test_one_stalled_sample_does_not_move_the_estimate() -> None:
    link = Link(bandwidth_mbps=1.0, rtt_ms=5.0)
    estimator = LinkEstimator(Link(bandwidth_mbps=20.0, rtt_ms=5.0))
    rng = random.Random(3)
    for _ in range(10):
        estimator.probe(link.rtt_ms * math.exp(rng.gauss(0.0, 0.05)))
        estimator.offload(ACTIVATION, transfer_ms(link, rng))
    before = estimator.estimate
    # A sample that waited behind a stalled process: 14x slower than the link.
    estimator.offload(ACTIVATION, 14 * transfer_ms(link, rng))
    estimator.probe(300.0)
    after = estimator.estimate
    assert after.bandwidth_mbps == pytest.approx(before.bandwidth_mbps, rel=0.05)
    assert after.rtt_ms == pytest.approx(before.rtt_ms, rel=0.1)


def test_at_a_detected_change_the_estimate_is_already_the_new_links() -> None:
    estimator = LinkEstimator(Link(bandwidth_mbps=1.0, rtt_ms=40.0))
    rng = random.Random(4)
    slow, fast = Link(bandwidth_mbps=1.0, rtt_ms=40.0), Link(bandwidth_mbps=8.0, rtt_ms=40.0)
    for _ in range(80):
        estimator.offload(ACTIVATION, transfer_ms(slow, rng))
    for _ in range(30):
        if estimator.offload(ACTIVATION, transfer_ms(fast, rng)):
            break
    else:
        pytest.fail("the rise to 8 Mbps was not detected in 30 offloads")
    # the samples that showed the change are kept: no restart from one sample, no creep
    assert estimator.estimate.bandwidth_mbps == pytest.approx(8.0, rel=0.25)
