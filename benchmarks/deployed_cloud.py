"""The deployed path under load: edge HTTP -> NATS -> cloud worker -> batcher.

A zoo model is profiled, planned (no exits: every request runs the edge part, is offloaded and
runs the whole cloud part) and exported. The edge (aiohttp, OIP v2, coalesced offloads) runs in
this process and the cloud worker in a child process (`benchmarks.cloud_process`), wired through
a real nats-server (`EmbeddedNats`) exactly as `inferedge serve` wires them. Deployed, the edge
and the broker run on hosts of their own, so by default the cloud gets --cloud-cores cores to
itself (and as many torch threads) and the edge, the broker and the clients share the rest;
--cloud-cores 0 puts everyone on every core. Two measurements:

- throughput: 2 x B closed-loop one-sample clients against a plain torch forward of the cloud
  part at batch B on the same cores with the same threads (target: at least 0.9x). Each round
  measures both, one after the other; the ratio is the median of the rounds' ratios, with their
  range. Clients call the edge's offload function (coalescer, codec, NATS, worker, batcher)
  with ready-made activations, which isolates the cloud path the target is about; with --http
  they also post to the edge over HTTP (then bound by the edge's own compute);
- offered load: an open-loop stream at --rate requests/s for --seconds to the demo's model
  (resnet18 at 3x16x16) through the edge's HTTP API, counting answers, timeouts and cloud_busy
  refusals (target: 0 timeouts), as served now (coalesced offloads, a concurrent worker with
  back-pressure) and as before (one message per offload, one offload at a time).

Run from the repository root: `python -m benchmarks.deployed_cloud [--json out.json]`. Prints
tables; --json writes the figures. This script reports; it never fails a test run on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import torch
from aiohttp import web
from benchmarks.cloud_batching import NEVER, export_plan
from benchmarks.cloud_process import CloudProcess, CloudSetup, Serving, split_cores

from inferedge.core.manifest import Manifest
from inferedge.dnn.torch.workflow import TorchWorkflow
from inferedge.runtime.coalescing import Coalescer
from inferedge.runtime.dataplane import EdgeDataplane
from inferedge.runtime.http import make_app
from inferedge.runtime.messages import Offload, OffloadContext
from inferedge.runtime.partition import Partition
from inferedge.runtime.policy import BatchPolicy
from inferedge.runtime.wiring import nats_offload
from inferedge.transport import EmbeddedNats, subject
from inferedge.transport.client import Messenger

TARGET_RATIO = 0.90
OFFLOAD = subject("bench", "deployed", "offload")


@dataclass(frozen=True)
class Exported:
    """A no-exit plan of a model, exported: the edge part loaded here, the cloud's manifest."""

    manifest: Manifest
    out: Path
    edge: Partition
    cloud_input: tuple[int, ...]


def export(model: str, shape: tuple[int, ...], out: Path) -> Exported:
    """Profile, plan (memory split, no exits) and export `model`; load its edge part."""
    manifest = export_plan(model, shape, 10, out)
    workflow = TorchWorkflow()
    cloud_part = Partition(manifest, "cloud", workflow.load_part(manifest, "cloud", out))
    edge_part = Partition(manifest, "edge", workflow.load_part(manifest, "edge", out))
    return Exported(manifest, out, edge_part, tuple(cloud_part.input_shape))


def body(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """An OIP v2 request with the binary-data extension, as tritonclient sends it."""
    raw = x.astype("<f4").tobytes()
    header = json.dumps({"inputs": [{
        "name": "input", "shape": list(x.shape), "datatype": "FP32",
        "parameters": {"binary_data_size": len(raw)},
    }]}).encode()  # fmt: skip
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


class Edge:
    """The edge as `inferedge serve edge` wires it (HTTP, coalesced offloads over NATS), in
    this process; the cloud worker is the `CloudProcess`."""

    def __init__(
        self, part: Partition, nats_url: str, timeout_s: float, *, coalesce: bool = True
    ) -> None:
        self.part, self.nats_url, self.timeout_s = part, nats_url, timeout_s
        self.coalesce = coalesce

    async def __aenter__(self) -> Edge:
        self.messenger = await Messenger.connect(self.nats_url, name="inferedge-edge")
        self.offload: Offload = nats_offload(self.messenger, OFFLOAD)
        if self.coalesce:
            self.offload = Coalescer(self.offload)
        self.dataplane = EdgeDataplane(
            self.part, threshold=NEVER, offload=self.offload, offload_timeout_s=self.timeout_s
        )
        app = make_app(self.dataplane, model_name="deployed")
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/v2/models/deployed/infer"
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.close()
        await self.runner.cleanup()
        await self.dataplane.aclose()
        await self.messenger.close()

    async def infer(self, payload: tuple[bytes, dict[str, str]]) -> tuple[int, str | None]:
        """HTTP status and the degraded/failed reason (None: answered by the cloud)."""
        async with self.http.post(self.url, data=payload[0], headers=payload[1]) as response:
            answer = await response.json()
        if response.status != 200:
            text = str(answer.get("error", ""))
            for reason in ("timeout", "cloud_busy", "unreachable", "cloud_not_ready"):
                if f"({reason}:" in text:
                    return response.status, reason
            return response.status, "error"
        return 200, answer["parameters"]["reason"][0] if "parameters" in answer else None


async def throughput(
    exported: Exported, cloud: CloudProcess, url: str, x: np.ndarray, *, b: int, n: int,
    via_http: bool,
) -> dict[str, float]:  # fmt: skip
    """Samples/s of 2 x B closed-loop one-sample clients through the deployed path: HTTP to
    the edge, or the edge's offload function with `x` as the activation."""
    payload = body(x[:1])
    cloud.serve(Serving(BatchPolicy(b, 5.0, max_queued_samples=4 * b)))
    try:
        async with Edge(exported.edge, url, timeout_s=30.0) as edge:
            context = OffloadContext(plan_hash=cloud.plan_hash, threshold=NEVER, timeout_s=30.0)

            async def client(count: int) -> None:
                for _ in range(count):
                    if via_http:
                        await edge.infer(payload)
                    else:
                        await edge.offload(x[:1], context)

            await asyncio.gather(*(client(3) for _ in range(2 * b)))  # warm-up
            before = cloud.counts()
            per_client = max(n // 2, 1)
            start = time.perf_counter()
            await asyncio.gather(*(client(per_client) for _ in range(2 * b)))
            elapsed = time.perf_counter() - start
            after = cloud.counts()
    finally:
        cloud.stop()
    batches = after["batches"] - before["batches"]
    samples = after["samples"] - before["samples"]
    return {"samples_per_s": per_client * 2 * b / elapsed, "mean_batch": samples / max(batches, 1)}


async def offered(
    exported: Exported, cloud: CloudProcess, url: str, x: np.ndarray, *, rate: float,
    seconds: float, now: bool,
) -> dict[str, Any]:  # fmt: skip
    """Open-loop load at `rate` req/s; outcome counts and latency percentiles."""
    payload = body(x[:1])
    serving = Serving(BatchPolicy(32, 5.0))
    if not now:
        serving = Serving(BatchPolicy(32, 5.0), max_in_flight=1, refuse_when_full=False)
    cloud.serve(serving)
    try:
        async with Edge(exported.edge, url, timeout_s=2.0, coalesce=now) as edge:
            for _ in range(5):
                await edge.infer(payload)  # warm-up
            outcomes: Counter[str] = Counter()
            latencies: list[float] = []

            async def one() -> None:
                sent = time.perf_counter()
                _, reason = await edge.infer(payload)
                latencies.append((time.perf_counter() - sent) * 1000.0)
                outcomes[reason or "cloud"] += 1

            tasks = []
            start = time.perf_counter()
            for i in range(int(rate * seconds)):
                await asyncio.sleep(max(start + i / rate - time.perf_counter(), 0.0))
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
    finally:
        counts = cloud.stop()
    latencies.sort()
    return {
        "worker": "now" if now else "before",
        "rate": rate, "requests": len(latencies), "outcomes": dict(outcomes),
        "timeouts": outcomes["timeout"], "shed_expired": counts["shed_expired"],
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 1),
    }  # fmt: skip


def measure_throughput(
    exported: Exported, nats_url: str, cores: frozenset[int] | None, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Paired rounds at each batch size: the plain forward, then the deployed path, both on the
    cloud's cores; the ratio is the median of the rounds' ratios."""
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    setup = CloudSetup(exported.manifest, exported.out, nats_url, OFFLOAD, cores)
    with CloudProcess(setup) as cloud:
        for b in (int(v) for v in args.batch_sizes.split(",")):
            x = rng.standard_normal((b, *exported.cloud_input)).astype(np.float32)
            xin = rng.standard_normal((1, *exported.edge.input_shape)).astype(np.float32)
            cloud.plain(x, 3)  # warm-up: the first forward on fresh threads is slow
            for via_http in (False, True) if args.http else (False,):
                plains, runs = [], []
                for _ in range(args.rounds):
                    plains.append(cloud.plain(x, args.batches))
                    sample = xin if via_http else x[:1]
                    run = throughput(
                        exported, cloud, nats_url, sample, b=b, n=args.batches, via_http=via_http
                    )
                    runs.append(asyncio.run(run))
                ratios = sorted(r["samples_per_s"] / p for r, p in zip(runs, plains, strict=True))
                ratio = statistics.median(ratios)
                rows.append({
                    "batch_size": b, "entry": "edge HTTP" if via_http else "edge offload (NATS)",
                    "plain_samples_per_s": round(statistics.median(plains), 1),
                    "deployed_samples_per_s": round(
                        statistics.median(r["samples_per_s"] for r in runs), 1),
                    "ratio": round(ratio, 3), "ratio_min": round(ratios[0], 3),
                    "ratio_max": round(ratios[-1], 3),
                    "mean_batch": round(statistics.median(r["mean_batch"] for r in runs), 2),
                    "meets_target": ratio >= TARGET_RATIO,
                })  # fmt: skip
    return rows


def main() -> None:
    """Measure throughput at each batch size, then the offered load, and print both."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--input-shape", default="3,64,64", help="For the throughput runs.")
    parser.add_argument("--demo-shape", default="3,16,16", help="For the offered-load runs.")
    parser.add_argument("--batch-sizes", default="8,32")
    parser.add_argument("--batches", type=int, default=30, help="Batches per round and side.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--cloud-cores", type=int, default=1,
        help="Cores of the cloud's own (0: everyone shares every core). The edge, the broker "
        "and the clients get the rest, as if on hosts of their own.",
    )  # fmt: skip
    parser.add_argument("--http", action="store_true", help="Also measure throughput via HTTP.")
    parser.add_argument("--json", type=Path, help="Write the figures here.")
    args = parser.parse_args()
    cloud_cores, edge_cores = split_cores(args.cloud_cores)
    if edge_cores is not None:
        # Before any thread or child starts: they inherit it (the cloud's child re-pins).
        os.sched_setaffinity(0, edge_cores)
        torch.set_num_threads(len(edge_cores))
    results: dict[str, Any] = {"throughput": [], "offered": []}
    with tempfile.TemporaryDirectory(prefix="inferedge-bench-") as tmp, EmbeddedNats() as nats:
        shape = tuple(int(d) for d in args.input_shape.split(","))
        big = export(args.model, shape, Path(tmp) / "big")
        results["throughput"] = measure_throughput(big, nats.url, cloud_cores, args)
        demo_shape = tuple(int(d) for d in args.demo_shape.split(","))
        demo = export(args.model, demo_shape, Path(tmp) / "demo")
        xin = np.random.default_rng(1).standard_normal((1, *demo_shape)).astype(np.float32)
        setup = CloudSetup(demo.manifest, demo.out, nats.url, OFFLOAD, cloud_cores)
        with CloudProcess(setup) as cloud:
            for now in (False, True) if args.seconds > 0 else ():
                load = offered(
                    demo, cloud, nats.url, xin, rate=args.rate, seconds=args.seconds, now=now
                )
                results["offered"].append(asyncio.run(load))
    where = (
        f"cloud on cores {sorted(cloud_cores)}, edge, broker and clients on {sorted(edge_cores)}"
        if cloud_cores is not None and edge_cores is not None
        else "everyone on every core"
    )
    results["cores"] = where
    print(f"throughput, {args.model} {args.input_shape}; {where}")
    print(f"{'B':>4} {'entry':<20}{'plain/s':>10}{'deployed/s':>12}{'ratio':>7}{'range':>13}"
          f"{'mean B':>8}{'target':>8}")  # fmt: skip
    for r in results["throughput"]:
        spread = f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}"
        print(f"{r['batch_size']:>4} {r['entry']:<20}{r['plain_samples_per_s']:>10.1f}"
              f"{r['deployed_samples_per_s']:>12.1f}{r['ratio']:>7.3f}{spread:>13}"
              f"{r['mean_batch']:>8.2f}{'ok' if r['meets_target'] else 'MISSED':>8}")  # fmt: skip
    print(
        f"\noffered load, {args.model} {args.demo_shape}, "
        f"{args.rate:g} req/s for {args.seconds:g} s"
    )
    print(
        f"{'worker':<8}{'requests':>9}{'cloud':>7}{'timeout':>8}{'busy':>6}"
        f"{'p50 ms':>8}{'p99 ms':>8}"
    )
    for r in results["offered"]:
        seen = r["outcomes"]
        print(f"{r['worker']:<8}{r['requests']:>9}{seen.get('cloud', 0):>7}{r['timeouts']:>8}"
              f"{seen.get('cloud_busy', 0):>6}{r['p50_ms']:>8}{r['p99_ms']:>8}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
