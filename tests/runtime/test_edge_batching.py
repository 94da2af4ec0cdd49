"""The edge's request batcher on a real edge dataplane: grouping, the knobs, the queue bound,
cancellation, records and metrics, the HTTP path and the server's wiring.

Batches are made deterministic by holding the edge busy: every row is offloaded (early exits
off) to a cloud that waits at a gate the test opens, so requests queue behind the held batch
until the test lets it finish. The offload's calls are the batches the edge ran, in samples.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.edge_batching import BatchRecord, EdgeBatcher, EdgeBusy
from inferedge.runtime.edge_setup import build_edge
from inferedge.runtime.errors import NotReady, OffloadFailed
from inferedge.runtime.http import make_app
from inferedge.runtime.messages import Answer, CloudAnswer, OffloadContext
from inferedge.runtime.partition import Partition, PartitionError
from inferedge.runtime.policy import BatchPolicy, PolicyError
from inferedge.runtime.serve_config import ServeConfig
from tests.clitools import RunCli, assert_one_line_error
from tests.runtime.conftest import Exported
from tests.runtime.helpers import WAIT_LIMIT_S, direct_offload, eventually

Images = Callable[..., np.ndarray]
NEVER = 2.0  # a threshold no confidence reaches: every row is offloaded
LONG_WAIT_MS = 60_000.0  # a batch short of its size only runs when it fills


class GatedCloud:
    """An offload to `cloud` that records the rows of each call and holds every call until
    `gate` is set; with `error`, the held calls fail with it instead."""

    def __init__(self, cloud: CloudDataplane, error: Exception | None = None) -> None:
        self.cloud = cloud
        self.error = error
        self.calls: list[int] = []
        self.gate = asyncio.Event()

    async def __call__(self, activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
        self.calls.append(int(activation.shape[0]))
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return await self.cloud.handle(activation, context.plan_hash, context.threshold)


@pytest_asyncio.fixture
async def cloud(cloud_part: Partition) -> AsyncIterator[CloudDataplane]:
    plane = CloudDataplane(cloud_part, batch_policy=BatchPolicy(64, 0.0), threshold=NEVER)
    yield plane
    await plane.aclose()


@pytest.fixture
def gated(cloud: CloudDataplane) -> GatedCloud:
    return GatedCloud(cloud)


@pytest_asyncio.fixture
async def edge(edge_part: Partition, gated: GatedCloud) -> AsyncIterator[EdgeDataplane]:
    plane = EdgeDataplane(edge_part, threshold=NEVER, offload=gated, offload_timeout_s=30.0)
    yield plane
    await plane.aclose()


@pytest_asyncio.fixture
async def batchers(edge: EdgeDataplane) -> AsyncIterator[Callable[..., EdgeBatcher]]:
    """`batchers(**settings)`: an EdgeBatcher over `edge`, closed after the test."""
    made: list[EdgeBatcher] = []

    def make(**settings: Any) -> EdgeBatcher:
        made.append(EdgeBatcher(edge, **settings))
        return made[-1]

    yield make
    for batcher in made:
        await batcher.aclose()


def start(batcher: EdgeBatcher, x: np.ndarray) -> asyncio.Task[list[Answer]]:
    return asyncio.get_running_loop().create_task(batcher.infer(x))


async def hold(batcher: EdgeBatcher, gated: GatedCloud, images: Images) -> asyncio.Task[Any]:
    """Start a one-sample request and wait until it holds the edge (waiting at the gate)."""
    held = start(batcher, images(1, 99))
    await eventually(lambda: gated.calls == [1], "the first batch to reach the cloud")
    return held


async def queue(batcher: EdgeBatcher, xs: list[np.ndarray]) -> list[asyncio.Task[list[Answer]]]:
    """Queue a request per array behind the held batch, in order."""
    tasks = []
    for i, x in enumerate(xs):
        tasks.append(start(batcher, x))
        await until_queued(batcher, sum(len(y) for y in xs[: i + 1]))
    return tasks


async def until_queued(batcher: EdgeBatcher, samples: int) -> None:
    await eventually(lambda: batcher.queued_samples == samples, f"{samples} samples to queue")


async def settle() -> None:
    """Let every ready task run until it waits (the batcher takes what it would take)."""
    for _ in range(20):
        await asyncio.sleep(0)


def predictions(answers: list[Answer]) -> list[int]:
    return [a.prediction for a in answers]


@pytest.mark.parametrize(
    ("sizes", "waited_ms", "blocked", "due"),
    [
        ([], 99.0, False, 0),
        ([1], 0.0, False, 0),  # short of the batch, not waited long enough
        ([1], 10.0, False, 1),  # waited max_wait_ms
        ([1, 4], 0.0, False, 1),  # the next request does not fit: the batch cannot grow
        ([2, 2], 0.0, False, 2),  # full
        ([1], 0.0, True, 1),  # what follows cannot join
        ([9, 1], 0.0, False, 1),  # larger than a batch: alone
    ],
)
def test_a_batch_is_due_when_it_cannot_grow_or_waited(
    sizes: list[int], waited_ms: float, blocked: bool, due: int
) -> None:
    policy = BatchPolicy(max_batch_size=4, max_wait_ms=10.0)
    assert policy.due(sizes, waited_ms, blocked=blocked) == due


@pytest.mark.asyncio
async def test_requests_queued_while_busy_run_together_and_each_gets_its_rows(
    batchers: Callable[..., EdgeBatcher],
    gated: GatedCloud,
    edge: EdgeDataplane,
    exported: Exported,
    images: Images,
) -> None:
    records: list[BatchRecord] = []
    batcher = batchers(batch_size=4, on_batch=records.append)
    held = await hold(batcher, gated, images)
    xs = [images(n, seed) for seed, n in enumerate([1, 2, 1, 3, 1])]
    tasks = await queue(batcher, xs)
    gated.gate.set()
    answered = await asyncio.gather(*tasks)
    await held
    assert gated.calls == [1, 4, 4]  # [held], [1, 2, 1], [3, 1]
    for x, answers in zip(xs, answered, strict=True):
        assert predictions(answers) == exported.predict(x)
        assert all(a.timings["queue_ms"] >= 0.0 for a in answers)
    assert [(r.size, r.requests) for r in records] == [(1, 1), (4, 3), (4, 2)]
    for record in records:
        assert len(record.waits_s) == len(record.latencies_s) == record.requests
        assert 0.0 < record.compute_s <= record.finished - record.started
        assert all(
            0.0 <= w <= lat for w, lat in zip(record.waits_s, record.latencies_s, strict=True)
        )
    registry = edge.metrics.registry
    assert registry.get_sample_value("inferedge_edge_batch_size_count") == 3
    assert registry.get_sample_value("inferedge_edge_batch_size_sum") == 9
    assert registry.get_sample_value("inferedge_edge_queue_seconds_count") == 6


@pytest.mark.asyncio
async def test_a_request_is_never_split_and_a_large_one_runs_alone(
    batchers: Callable[..., EdgeBatcher],
    gated: GatedCloud,
    exported: Exported,
    images: Images,
    caplog: pytest.LogCaptureFixture,
) -> None:
    batcher = batchers(batch_size=2)
    batcher.on_batch = lambda record: [][record.size]  # an observer's bug fails no answer
    held = await hold(batcher, gated, images)
    xs = [images(1, 1), images(3, 2), images(1, 3)]
    tasks = await queue(batcher, xs)
    gated.gate.set()
    answered = await asyncio.gather(held, *tasks)
    assert gated.calls == [1, 1, 3, 1]
    assert [len(a) for a in answered] == [1, 1, 3, 1]
    assert predictions(answered[2]) == exported.predict(xs[1])
    assert caplog.text.count("on_batch failed: IndexError") == 4


@pytest.mark.asyncio
async def test_a_new_batch_size_applies_from_the_next_batch(
    batchers: Callable[..., EdgeBatcher], gated: GatedCloud, images: Images
) -> None:
    batcher = batchers(batch_size=2)
    held = await hold(batcher, gated, images)
    tasks = await queue(batcher, [images(1, seed) for seed in range(4)])
    batcher.set_batch_size(3)
    assert batcher.policy.max_batch_size == 3
    gated.gate.set()
    await asyncio.gather(held, *tasks)
    assert gated.calls == [1, 3, 1]


@pytest.mark.asyncio
async def test_max_wait_holds_a_short_batch_until_it_fills(
    batchers: Callable[..., EdgeBatcher], gated: GatedCloud, images: Images
) -> None:
    gated.gate.set()
    batcher = batchers(batch_size=3, max_wait_ms=LONG_WAIT_MS)
    first = start(batcher, images(1, 1))
    await settle()
    assert (batcher.queued_samples, gated.calls) == (1, [])
    rest = [start(batcher, images(1, seed)) for seed in (2, 3)]
    await asyncio.gather(first, *rest)
    assert gated.calls == [3]


@pytest.mark.asyncio
async def test_a_short_batch_runs_once_its_wait_is_over_or_cut(
    batchers: Callable[..., EdgeBatcher], gated: GatedCloud, images: Images
) -> None:
    gated.gate.set()
    batcher = batchers(batch_size=3, max_wait_ms=20.0)
    assert len(await asyncio.wait_for(batcher.infer(images(1)), WAIT_LIMIT_S)) == 1
    batcher.set_max_wait_ms(LONG_WAIT_MS)
    waiting = start(batcher, images(1))
    await settle()
    assert gated.calls == [1]
    batcher.set_max_wait_ms(0)  # applies to the batch still forming
    assert len(await asyncio.wait_for(waiting, WAIT_LIMIT_S)) == 1
    assert gated.calls == [1, 1]


BAD_SIZES: list[tuple[str, object]] = [("set_batch_size", v) for v in (0, 2.5, True)]
BAD_WAITS: list[tuple[str, object]] = [
    ("set_max_wait_ms", v) for v in (-1, math.nan, math.inf, "5")
]


@pytest.mark.parametrize(("setter", "value"), BAD_SIZES + BAD_WAITS)
@pytest.mark.asyncio
async def test_bad_knob_values_are_refused_and_change_nothing(
    batchers: Callable[..., EdgeBatcher], setter: str, value: object
) -> None:
    batcher = batchers(batch_size=4, max_wait_ms=1.0)
    field = "max_batch_size" if setter == "set_batch_size" else "max_wait_ms"
    with pytest.raises(PolicyError, match=f"^{field} must be"):
        getattr(batcher, setter)(value)
    assert (batcher.policy.max_batch_size, batcher.policy.max_wait_ms) == (4, 1.0)


@pytest.mark.asyncio
async def test_a_full_queue_refuses_at_once(
    batchers: Callable[..., EdgeBatcher], gated: GatedCloud, images: Images
) -> None:
    batcher = batchers(batch_size=1, max_queued_samples=3)
    held = await hold(batcher, gated, images)
    # An empty queue takes a request of any size, as the cloud does: it runs alone.
    tasks = await queue(batcher, [images(5)])
    with pytest.raises(EdgeBusy, match="5 samples queued; 1 more would pass its bound of 3"):
        await batcher.infer(images(1))
    gated.gate.set()
    await asyncio.gather(held, *tasks)
    assert len(await batcher.infer(images(1))) == 1  # drained, it takes requests again


@pytest.mark.asyncio
async def test_a_cancelled_caller_leaves_the_queue(
    batchers: Callable[..., EdgeBatcher], gated: GatedCloud, exported: Exported, images: Images
) -> None:
    batcher = batchers(batch_size=4)
    held = await hold(batcher, gated, images)
    xs = [images(1, 1), images(2, 2), images(1, 3)]
    first, gone, last = await queue(batcher, xs)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert batcher.queued_samples == 2
    gated.gate.set()
    await held
    assert predictions(await first) == exported.predict(xs[0])
    assert predictions(await last) == exported.predict(xs[2])
    assert gated.calls == [1, 2]


@pytest.mark.asyncio
async def test_a_failed_batch_fails_each_of_its_callers(
    exported: Exported, cloud: CloudDataplane, images: Images
) -> None:
    gated = GatedCloud(cloud, error=ConnectionRefusedError("no route to the cloud"))
    plane = EdgeDataplane(
        exported.load("no-edge-exit", "edge"), threshold=NEVER, offload=gated,
        offload_timeout_s=30.0,
    )  # fmt: skip
    batcher = EdgeBatcher(plane, batch_size=4)
    try:
        held = await hold(batcher, gated, images)
        tasks = await queue(batcher, [images(1, 1), images(2, 2)])
        gated.gate.set()
        outcomes = asyncio.gather(held, *tasks, return_exceptions=True)
        for outcome in await asyncio.wait_for(outcomes, WAIT_LIMIT_S):
            assert isinstance(outcome, OffloadFailed)
        assert gated.calls == [1, 3]
    finally:
        await batcher.aclose()
        await plane.aclose()


@pytest.mark.asyncio
async def test_a_malformed_request_fails_alone_before_queueing(
    batchers: Callable[..., EdgeBatcher], gated: GatedCloud, images: Images
) -> None:
    batcher = batchers(batch_size=4)
    held = await hold(batcher, gated, images)
    (good,) = await queue(batcher, [images(1)])
    bad = start(batcher, np.zeros((2, 1, 1), np.float32))
    await settle()
    assert bad.done()  # refused while the edge is still busy: it never queued
    with pytest.raises(PartitionError, match="input shape must be"):
        await bad
    assert batcher.queued_samples == 1
    gated.gate.set()
    assert [len(a) for a in await asyncio.gather(held, good)] == [1, 1]
    assert gated.calls == [1, 1]


@pytest.mark.asyncio
async def test_closing_fails_waiting_callers_and_refuses_new_ones(
    batchers: Callable[..., EdgeBatcher], gated: GatedCloud, images: Images
) -> None:
    batcher = batchers(batch_size=4)
    held = await hold(batcher, gated, images)
    (waiting,) = await queue(batcher, [images(1)])
    await batcher.aclose()
    for task in (held, waiting):
        with pytest.raises(NotReady, match="shutting down"):
            await asyncio.wait_for(task, WAIT_LIMIT_S)
    with pytest.raises(NotReady, match="shut down"):
        await batcher.infer(images(1))


@pytest.mark.asyncio
async def test_batch_size_one_answers_as_the_unbatched_dataplane(
    edge_part: Partition, cloud: CloudDataplane, images: Images
) -> None:
    x = images(6)
    # Between the first exit's confidences: some rows answer at the edge, the others offload.
    threshold = float(np.median([c[0].confidence for c in edge_part.run_edge(x, NEVER).candidates]))
    plane = EdgeDataplane(
        edge_part, threshold=threshold, offload=direct_offload(cloud), offload_timeout_s=30.0
    )
    batcher = EdgeBatcher(plane)
    try:
        direct = await plane.infer(x)
        batched = await batcher.infer(x)
    finally:
        await batcher.aclose()
        await plane.aclose()
    assert (batcher.policy.max_batch_size, batcher.policy.max_wait_ms) == (1, 0.0)
    drop = {"timings"}
    assert [a.model_dump(exclude=drop) for a in batched] == [
        a.model_dump(exclude=drop) for a in direct
    ]
    assert {a.location for a in direct} == {"edge", "cloud"}  # both paths compared
    for one, other in zip(batched, direct, strict=True):
        assert set(one.timings) == {"queue_ms", *other.timings}


@pytest.mark.asyncio
async def test_the_served_edge_computes_the_next_batch_while_one_offloads(
    edge_part: Partition, gated: GatedCloud, images: Images, tmp_path: Path
) -> None:
    config = ServeConfig(
        role="edge", store_uri="unused", prefix="unused", manifest_sha256="unused",
        cache_dir=tmp_path, edge_batch_size=4, edge_max_wait_ms=2.0, offload_timeout_s=30.0,
    )  # fmt: skip
    batcher = build_edge(config, edge_part, NEVER, gated).batcher
    try:
        assert (batcher.policy.max_batch_size, batcher.policy.max_wait_ms) == (4, 2.0)
        held = await hold(batcher, gated, images)
        following = start(batcher, images(2))
        await eventually(lambda: gated.calls == [1, 2], "the next batch to reach the cloud")
        gated.gate.set()
        assert [len(a) for a in await asyncio.gather(held, following)] == [1, 2]
    finally:
        await batcher.aclose()
        await batcher.dataplane.aclose()


@pytest.mark.asyncio
async def test_http_answers_through_the_batcher_and_503_when_full(
    batchers: Callable[..., EdgeBatcher], edge: EdgeDataplane, gated: GatedCloud, images: Images
) -> None:
    batcher = batchers(batch_size=4, max_queued_samples=1)
    x = images(1)
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}]}  # fmt: skip
    app = make_app(edge, model_name="main", batcher=batcher)
    async with TestClient(TestServer(app)) as session:
        held = await hold(batcher, gated, images)
        tasks = await queue(batcher, [images(1)])
        response = await session.post("/v2/models/main/infer", json=body)
        assert response.status == 503
        assert "bound of 1" in (await response.json())["error"]
        gated.gate.set()
        await asyncio.gather(held, *tasks)
        response = await session.post("/v2/models/main/infer", json=body)
        assert response.status == 200, await response.text()
        (timings,) = (await response.json())["parameters"]["timings_ms"]
    assert "queue_ms" in timings
    refused = edge.metrics.registry.get_sample_value(
        "inferedge_refused_total", {"reason": "edge_busy"}
    )
    assert refused == 1


def test_serve_refuses_bad_edge_batching_flags_in_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    serve = ["serve", "edge", "--store", str(tmp_path), "--manifest-sha256", "a" * 64,
             "--prefix", "default/main/0123456789abcdef/0123456789abcdef"]  # fmt: skip
    result = run_cli(*serve, "--edge-batch-size", "0")
    assert_one_line_error(result, "--edge-batch-size", "1<=x<=4096")
    result = run_cli(*serve, "--edge-max-wait-ms", "nan")
    assert_one_line_error(result, "--edge-max-wait-ms", "expected a finite number")
    env = {**os.environ, "INFEREDGE_SERVE_EDGE_BATCH_SIZE": "-3"}
    assert_one_line_error(run_cli(*serve, env=env), "--edge-batch-size", "-3")
