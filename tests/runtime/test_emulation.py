"""Emulated links: an offload costs what the planner says it would."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from inferedge.core.link import Link
from inferedge.core.link_trace import parse_trace
from inferedge.runtime.emulation import emulated_link
from inferedge.runtime.messages import CloudAnswer, OffloadContext
from inferedge.runtime.policy import PolicyError
from tests.clitools import RunCli, assert_one_line_error

CONTEXT = OffloadContext(plan_hash="0" * 16, threshold=0.5, timeout_s=5.0)


async def _instant(activation: np.ndarray, context: OffloadContext) -> CloudAnswer:
    return CloudAnswer(plan_hash=context.plan_hash, rows=(), queue_ms=0, compute_ms=0, batch_size=1)


@pytest.mark.asyncio
@pytest.mark.parametrize(("encoding", "share"), [("raw", 1.0), ("fp16", 0.5), ("int8", 0.25)])
async def test_an_offload_takes_at_least_what_the_link_model_predicts(
    encoding: str, share: float
) -> None:
    link = Link(bandwidth_mbps=8.0, rtt_ms=30.0)
    activation = np.zeros((1, 64, 16, 16), np.float32)  # 64 KiB
    offload = emulated_link(_instant, link, encoding)
    started = time.perf_counter()
    answer = await offload(activation, CONTEXT)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert answer.plan_hash == CONTEXT.plan_hash
    assert elapsed_ms >= link.transfer_ms(int(activation.nbytes * share)) - 0.5


def test_an_unknown_encoding_is_refused() -> None:
    with pytest.raises(PolicyError, match="encoding must be one of raw, fp16, int8"):
        emulated_link(_instant, Link(), "zip")


@pytest.mark.asyncio
async def test_a_traced_link_charges_the_link_of_the_moment() -> None:
    # 0.5 Mbps from 1,000 s before now, 500 Mbps from 1,000 s after: an offload now is slow
    trace = parse_trace("0,500,0\n1000,0.5,0\n3000,500,0\n", "trace.csv")
    activation = np.zeros((1, 16, 16, 16), np.float32)  # 16 KiB: 262 ms at 0.5 Mbps
    slow = emulated_link(_instant, trace, origin=time.time() - 1500)
    started = time.perf_counter()
    await slow(activation, CONTEXT)
    assert (time.perf_counter() - started) * 1000 >= 262 - 0.5
    # without an origin the trace starts with the first offload: 0.5 Mbps for the first 10 s
    first = emulated_link(_instant, parse_trace("0,0.5,0\n10,500,0\n", "t.csv"))
    started = time.perf_counter()
    await first(activation, CONTEXT)
    assert (time.perf_counter() - started) * 1000 >= 262 - 0.5


def test_serve_refuses_bad_link_emulation_in_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    serve = ["serve", "edge", "--store", str(tmp_path), "--manifest-sha256", "a" * 64,
             "--prefix", "default/main/0123456789abcdef/0123456789abcdef"]  # fmt: skip
    bad = tmp_path / "bad.csv"
    bad.write_text("t_s,bandwidth_mbps,rtt_ms\n0,fast,10\n")
    result = run_cli(*serve, "--emulate-link-trace", str(bad))
    assert_one_line_error(
        result, "--emulate-link-trace", "line 2: bandwidth_mbps: expected a number"
    )
    result = run_cli(*serve, "--emulate-link-trace", str(tmp_path / "none.csv"))
    assert_one_line_error(result, "--emulate-link-trace", "none.csv: cannot read")
    good = tmp_path / "good.csv"
    good.write_text("0,8,30\n")
    result = run_cli(*serve, "--emulate-link-trace", str(good), "--emulate-bandwidth-mbps", "8",
                     "--emulate-rtt-ms", "30")  # fmt: skip
    assert_one_line_error(result, "not both")
    result = run_cli(*serve, "--emulate-link-origin", "100")
    assert_one_line_error(result, "--emulate-link-origin goes with --emulate-link-trace")
    result = run_cli(*serve, "--link-bandwidth-mbps", "8")
    assert_one_line_error(result, "--link-bandwidth-mbps and --link-rtt-ms go together")
    result = run_cli(*serve, "--link-bandwidth-mbps", "0", "--link-rtt-ms", "10")
    assert_one_line_error(result, "--link-bandwidth-mbps")
    result = run_cli(*serve, "--pin-point", "12/-/-")
    assert_one_line_error(result, "--pin-point keeps one route: it goes with --adapt off")
    result = run_cli(*serve, "--adapt", "off", "--pin-point", "twelve")
    assert_one_line_error(result, "--pin-point", "expected 'split/edge exits/cloud exits'")
    cloud = ["serve", "cloud", *serve[2:]]
    result = run_cli(*cloud, "--emulate-link-trace", str(good))
    assert_one_line_error(result, "only the edge offloads")
