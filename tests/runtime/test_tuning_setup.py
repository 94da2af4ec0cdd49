"""The knob tuner wired into a real edge (partition, dataplane, batcher): emulated knobs and
energy, the /tuning report and metrics, and what a node without an agent or a sensor gets."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from inferedge.api.tuning import KhzRange, KnobEmulationSpec, TuningSpec
from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.edge_batching import EdgeBatcher
from inferedge.runtime.http import make_app
from inferedge.runtime.partition import Partition
from inferedge.runtime.policy import BatchPolicy
from inferedge.runtime.tuning_setup import bounded, start_tuning
from tests.clitools import RunCli, assert_one_line_error
from tests.runtime import sysfs_trees
from tests.runtime.helpers import direct_offload

Images = Callable[..., np.ndarray]


@pytest_asyncio.fixture
async def batcher(edge_part: Partition, cloud_part: Partition) -> AsyncIterator[EdgeBatcher]:
    cloud = CloudDataplane(cloud_part, batch_policy=BatchPolicy(64, 0.0), threshold=0.5)
    edge = EdgeDataplane(
        edge_part, threshold=0.5, offload=direct_offload(cloud), offload_timeout_s=30.0
    )
    batching = EdgeBatcher(edge)
    yield batching
    await batching.aclose()
    await edge.aclose()
    await cloud.aclose()


@pytest.mark.asyncio
async def test_emulated_tuning_measures_windows_moves_the_knobs_and_reports(
    batcher: EdgeBatcher, images: Images, tmp_path: Path
) -> None:
    # a sequential replay arrives as fast as it is served: no load change is to reset the grid
    tuning = TuningSpec(
        optimiser="grid", window_requests=4, warmup_requests=1, max_batch=4, arrival_change=10
    )
    active = await start_tuning(
        tuning, batcher, pipeline="ns/p", emulation=KnobEmulationSpec(),
        agent_socket=tmp_path / "none.sock", started=0.0,
    )  # fmt: skip
    assert active is not None
    assert active.emulated
    assert active.clocks
    assert batcher.policy.max_batch_size == 4  # the maximum setting comes first
    x = images(12)
    for i in range(12):
        await batcher.infer(x[i : i + 1])
    windows = active.tuner.windows
    assert len(windows) >= 2
    assert windows[0].cost == pytest.approx(1.0)  # the reference window
    # grid search starts at the lowest allowed clocks: the compute is stretched to match
    assert batcher.dataplane.compute_slowdown > 1.0
    report = active.report()
    assert report.emulated
    assert report.reference is not None
    assert report.windows[0].cpu_khz == 1_907_000
    assert report.setting["cpu_khz"] < 1_907_000
    metrics = batcher.dataplane.metrics.exposition().decode()
    assert 'inferedge_tuning_energy_joules_per_request{source="emulated"}' in metrics
    assert f"inferedge_tuning_windows_total {float(len(windows))}" in metrics
    app = make_app(batcher.dataplane, model_name="main", batcher=batcher)
    app.router.add_get("/tuning", active.handle)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/tuning")
        assert response.status == 200
        body = json.loads(await response.text())
        assert body["optimiser"] == "grid"
        assert len(body["windows"]) == len(active.tuner.windows) == body["window_count"]
        latest = json.loads(await (await client.get("/tuning?windows=1")).text())
        assert [w["index"] for w in latest["windows"]] == [body["window_count"] - 1]
        none = json.loads(await (await client.get("/tuning?windows=0")).text())
        assert (none["windows"], none["window_count"]) == ([], body["window_count"])
        for query in ("windows=-1", "windows=x", "windows=4096", "windows=1&windows=2"):
            refused = await client.get(f"/tuning?{query}")
            assert refused.status == 400, query
            error = json.loads(await refused.text())["error"]
            assert error.startswith("windows: expected one integer from 0 to 2048"), error
    await active.aclose()


@pytest.mark.asyncio
async def test_without_a_sensor_there_is_no_tuning(
    batcher: EdgeBatcher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        active = await start_tuning(
            TuningSpec(), batcher, pipeline="ns/p", emulation=None,
            agent_socket=tmp_path / "none.sock", started=0.0, sysfs_root=tmp_path,
        )  # fmt: skip
    assert active is None
    assert "tuning: off: no readable energy sensor" in caplog.text
    assert batcher.on_batch is None


@pytest.mark.asyncio
async def test_without_an_agent_only_the_batch_is_tuned_on_a_real_sensor(
    batcher: EdgeBatcher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sysfs_trees.xavier_nx(tmp_path)
    with caplog.at_level(logging.WARNING):
        active = await start_tuning(
            TuningSpec(max_batch=8), batcher, pipeline="ns/p", emulation=None,
            agent_socket=tmp_path / "no-agent.sock", started=0.0, sysfs_root=tmp_path,
        )  # fmt: skip
    assert active is not None
    assert not active.emulated
    assert not active.clocks
    assert "tuning: the batch size only" in caplog.text
    space = active.tuner.space
    assert (space.cpu_steps, space.gpu_steps, space.max_batch) == (1, 1, 8)
    await active.aclose()


def test_bounds_and_the_slowest_share_trim_the_table() -> None:
    table = tuple(range(100_000, 1_100_000, 100_000))  # 10 steps
    assert bounded(table, KhzRange(), 0.0, "cpu") == table
    assert bounded(table, KhzRange(), 0.2, "cpu") == table[2:]
    assert bounded(table, KhzRange(min_khz=250_000, max_khz=700_000), 0.0, "cpu") == (
        300_000, 400_000, 500_000, 600_000, 700_000,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"^tuning\.gpu: no clock step lies within 1\.\.50 kHz"):
        bounded(table, KhzRange(min_khz=1, max_khz=50), 0.0, "gpu")


def test_serve_refuses_bad_tuning_in_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    serve = ["serve", "edge", "--store", str(tmp_path), "--manifest-sha256", "a" * 64,
             "--prefix", "default/main/0123456789abcdef/0123456789abcdef"]  # fmt: skip
    result = run_cli(*serve, "--tuning", '{"optimiser": "annealing"}')
    assert_one_line_error(result, "--tuning", "tuning: optimiser: Input should be")
    result = run_cli(*serve, "--tuning", '{"minBatch": 9, "maxBatch": 2}')
    assert_one_line_error(result, "--tuning", "minBatch must not exceed maxBatch")
    result = run_cli(*serve, "--tuning", "not json")
    assert_one_line_error(result, "--tuning", "tuning")
    result = run_cli(*serve, "--tuning", "{}", "--emulate-knobs", '{"preset": "orin"}')
    assert_one_line_error(result, "--emulate-knobs", "emulate-knobs: preset")
