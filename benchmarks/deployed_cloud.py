"""The deployed path under load: edge HTTP -> NATS -> cloud worker -> batcher.

A zoo model is profiled, planned (no exits: every request runs the edge part, is offloaded and
runs the whole cloud part) and exported. An edge (aiohttp, OIP v2) and a cloud worker are
served in this process on one event loop, wired through a real nats-server
(`EmbeddedNats`), exactly as `inferedge serve` wires them; clients post one-sample binary
tensors to the edge over HTTP. Two measurements:

- throughput: 2 x B closed-loop clients against a plain torch forward of the cloud part at
  batch B (target: at least 0.9x), two ways: clients posting to the edge over HTTP (bound by
  the edge's own compute, one request at a time on its thread, on the same cores), and clients
  calling the edge's offload function (`nats_offload`: codec, NATS, worker, batcher) with
  ready-made activations, which isolates the cloud path the target is about;
- offered load: an open-loop stream at --rate requests/s for --seconds to the demo's model
  (resnet18 at 3x16x16), counting answers, timeouts and cloud_busy refusals (target: 0
  timeouts), with the worker taking offloads concurrently ("now") and one at a time, as
  before ("before": concurrency 1, no back-pressure).

Run from the repository root: `python -m benchmarks.deployed_cloud [--json out.json]`.
Everything shares this machine's cores (edge compute, HTTP, NATS, cloud compute, clients),
so the figures are this host's, not a two-host deployment's. Prints tables; --json writes
the figures. This script reports; it never fails a test run on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import torch
from aiohttp import web
from benchmarks.cloud_batching import plain_throughput

from inferedge.core.plan import PlanRequest
from inferedge.core.planner import make_plan
from inferedge.dnn.protocols import ProfileRequest
from inferedge.dnn.torch.backend import TorchBackend
from inferedge.dnn.torch.export import export_partitions, load_part, make_manifest
from inferedge.dnn.torch.graph import build_cut_graph
from inferedge.dnn.torch.loader import load_model
from inferedge.dnn.torch.workflow import TorchWorkflow
from inferedge.runtime.coalescing import Coalescer
from inferedge.runtime.dataplane import CloudDataplane, EdgeDataplane
from inferedge.runtime.http import make_app
from inferedge.runtime.messages import OffloadContext
from inferedge.runtime.partition import Partition
from inferedge.runtime.policy import BatchPolicy
from inferedge.runtime.wiring import cloud_worker, nats_offload
from inferedge.transport import EmbeddedNats, subject
from inferedge.transport.client import Messenger

TARGET_RATIO = 0.90
NEVER = 2.0
OFFLOAD = subject("bench", "deployed", "offload")


def partitions(
    model: str, shape: tuple[int, ...], out: Path
) -> tuple[Partition, Partition, list[torch.nn.Module]]:
    """Edge and cloud parts of a no-exit plan of `model`, and the cloud's plain modules."""
    base: dict[str, Any] = {"model_ref": model, "num_classes": 10, "input_shape": shape,
                            "batch_sizes": (1,), "warmup": 0, "repeats": 1}  # fmt: skip
    backend = TorchBackend()
    edge = backend.profile(ProfileRequest(**base, device_name="edge", emulate_slowdown=4.0))
    cloud = backend.profile(ProfileRequest(**base, device_name="cloud"))
    request = PlanRequest(strategy="memory", memory_fraction=0.3, edge_exits=0, cloud_exits=0)
    plan = make_plan(edge, cloud, request)
    torch.manual_seed(0)
    loaded = load_model(model, 10, shape)
    graph = build_cut_graph(loaded.module.eval(), torch.zeros(1, *shape), name=loaded.name)
    files, steps = export_partitions(graph, plan, {}, out)
    manifest = make_manifest(plan, files, steps, None)
    workflow = TorchWorkflow()
    modules = [step.segment for step in load_part(manifest, "cloud", out)]
    return (
        Partition(manifest, "edge", workflow.load_part(manifest, "edge", out)),
        Partition(manifest, "cloud", workflow.load_part(manifest, "cloud", out)),
        modules,
    )


def body(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """An OIP v2 request with the binary-data extension, as tritonclient sends it."""
    raw = x.astype("<f4").tobytes()
    header = json.dumps({"inputs": [{
        "name": "input", "shape": list(x.shape), "datatype": "FP32",
        "parameters": {"binary_data_size": len(raw)},
    }]}).encode()  # fmt: skip
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


class Deployed:
    """An edge and a cloud worker wired through a real nats-server, served on one loop."""

    def __init__(self, edge: Partition, cloud: Partition, policy: BatchPolicy, **opts: Any):
        self.parts, self.policy, self.opts = (edge, cloud), policy, opts

    async def __aenter__(self) -> Deployed:
        self.nats = EmbeddedNats().start()
        self.messenger = await Messenger.connect(self.nats.url)
        edge_part, cloud_part = self.parts
        self.cloud = CloudDataplane(cloud_part, batch_policy=self.policy, threshold=NEVER)
        in_flight = self.opts.get("max_in_flight", 128)
        self.service = await self.messenger.serve(
            OFFLOAD, "inferedge-workers", cloud_worker(self.cloud),
            concurrency=in_flight, max_in_flight=in_flight,
            refuse_when_full=self.opts.get("refuse_when_full", True),
        )  # fmt: skip
        self.edge = EdgeDataplane(
            edge_part, threshold=NEVER, offload=Coalescer(nats_offload(self.messenger, OFFLOAD)),
            offload_timeout_s=self.opts.get("timeout_s", 2.0),
        )  # fmt: skip
        self.runner = web.AppRunner(make_app(self.edge, model_name="deployed"), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/v2/models/deployed/infer"
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.close()
        await self.runner.cleanup()
        await self.service.stop()
        await self.edge.aclose()
        await self.cloud.aclose()
        await self.messenger.close()
        self.nats.stop()

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
    parts: tuple[Partition, Partition], x: np.ndarray, b: int, n: int, via_http: bool
) -> dict[str, float]:
    """Samples/s of 2 x B closed-loop one-sample clients through the deployed path: HTTP to
    the edge, or the edge's offload function with `x` as the activation."""
    payload = body(x[:1])
    async with Deployed(*parts, BatchPolicy(b, 5.0, max_queued_samples=4 * b), timeout_s=30) as d:
        offload = Coalescer(nats_offload(d.messenger, OFFLOAD))  # as `inferedge serve` wires it
        context = OffloadContext(plan_hash=parts[1].plan_hash, threshold=NEVER, timeout_s=30.0)

        async def client(count: int, sizes: list[int] | None) -> None:
            for _ in range(count):
                if via_http:
                    await d.infer(payload)
                else:
                    await offload(x[:1], context)

        await asyncio.gather(*(client(3, None) for _ in range(2 * b)))  # warm-up
        before = d.cloud.metrics.registry.get_sample_value("inferedge_batch_size_count") or 0.0
        before_sum = d.cloud.metrics.registry.get_sample_value("inferedge_batch_size_sum") or 0.0
        per_client = max(n * b // (2 * b), 1)
        start = time.perf_counter()
        await asyncio.gather(*(client(per_client, []) for _ in range(2 * b)))
        elapsed = time.perf_counter() - start
        reg = d.cloud.metrics.registry
        batches = (reg.get_sample_value("inferedge_batch_size_count") or 0.0) - before
        samples = (reg.get_sample_value("inferedge_batch_size_sum") or 0.0) - before_sum
    return {"samples_per_s": per_client * 2 * b / elapsed, "mean_batch": samples / max(batches, 1)}


async def offered(
    parts: tuple[Partition, Partition], x: np.ndarray, rate: float, seconds: float, now: bool
) -> dict[str, Any]:
    """Open-loop load at `rate` req/s; outcome counts and latency percentiles."""
    payload = body(x[:1])
    opts: dict[str, Any] = {"timeout_s": 2.0}
    if not now:
        opts |= {"max_in_flight": 1, "refuse_when_full": False}
    async with Deployed(*parts, BatchPolicy(32, 5.0), **opts) as d:
        for _ in range(5):
            await d.infer(payload)  # warm-up
        outcomes: Counter[str] = Counter()
        latencies: list[float] = []

        async def one() -> None:
            sent = time.perf_counter()
            _, reason = await d.infer(payload)
            latencies.append((time.perf_counter() - sent) * 1000.0)
            outcomes[reason or "cloud"] += 1

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(start + i / rate - time.perf_counter(), 0.0))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        shed = {
            r: d.cloud.metrics.registry.get_sample_value("inferedge_shed_total", {"reason": r})
            or 0.0 for r in ("expired", "cloud_busy")
        }  # fmt: skip
    latencies.sort()
    return {
        "worker": "now (concurrent, back-pressure)" if now else "before (one at a time)",
        "rate": rate, "requests": len(latencies), **dict(outcomes),
        "timeouts": outcomes["timeout"], "shed_expired": shed["expired"],
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 1),
    }  # fmt: skip


def main() -> None:
    """Measure throughput at each batch size, then the offered load, and print both."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--input-shape", default="3,64,64", help="For the throughput runs.")
    parser.add_argument("--demo-shape", default="3,16,16", help="For the offered-load runs.")
    parser.add_argument("--batch-sizes", default="8,32")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--http", action="store_true", help="Also measure throughput via HTTP.")
    parser.add_argument("--json", type=Path, help="Write the figures here.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    results: dict[str, Any] = {"throughput": [], "offered": []}
    with tempfile.TemporaryDirectory(prefix="inferedge-bench-") as tmp:
        shape = tuple(int(d) for d in args.input_shape.split(","))
        edge, cloud, modules = partitions(args.model, shape, Path(tmp) / "big")
        for b in (int(v) for v in args.batch_sizes.split(",")):
            x = rng.standard_normal((b, *cloud.input_shape)).astype(np.float32)
            xin = rng.standard_normal((1, *shape)).astype(np.float32)
            for via_http in (False, True) if args.http else (False,):
                plains, runs = [], []
                for _ in range(args.rounds):
                    plains.append(plain_throughput(modules, x, args.batches))
                    sample = xin if via_http else x[:1]
                    runs.append(
                        asyncio.run(throughput((edge, cloud), sample, b, args.batches, via_http))
                    )
                plain = statistics.median(plains)
                got = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                results["throughput"].append({
                    "batch_size": b, "entry": "edge HTTP" if via_http else "edge offload (NATS)",
                    "plain_samples_per_s": round(plain, 1),
                    "deployed_samples_per_s": round(got["samples_per_s"], 1),
                    "ratio": round(got["samples_per_s"] / plain, 3),
                    "mean_batch": round(got["mean_batch"], 2),
                    "meets_target": got["samples_per_s"] / plain >= TARGET_RATIO,
                })  # fmt: skip
        demo = tuple(int(d) for d in args.demo_shape.split(","))
        edge, cloud, _ = partitions(args.model, demo, Path(tmp) / "demo")
        xin = rng.standard_normal((1, *demo)).astype(np.float32)
        for now in (False, True) if args.seconds > 0 else ():
            results["offered"].append(
                asyncio.run(offered((edge, cloud), xin, args.rate, args.seconds, now))
            )
    print(f"throughput, {args.model} {args.input_shape}, torch threads {torch.get_num_threads()}")
    print(f"{'B':>4} {'entry':<20}{'plain/s':>10}{'deployed/s':>12}{'ratio':>7}{'mean B':>8}"
          f"{'target':>8}")  # fmt: skip
    for r in results["throughput"]:
        print(f"{r['batch_size']:>4} {r['entry']:<20}{r['plain_samples_per_s']:>10.1f}"
              f"{r['deployed_samples_per_s']:>12.1f}{r['ratio']:>7.3f}{r['mean_batch']:>8.2f}"
              f"{'ok' if r['meets_target'] else 'MISSED':>8}")  # fmt: skip
    print(
        f"\noffered load, {args.model} {args.demo_shape}, "
        f"{args.rate:g} req/s for {args.seconds:g} s"
    )
    print(
        f"{'worker':<34}{'requests':>9}{'cloud':>7}{'timeout':>8}{'busy':>6}"
        f"{'p50 ms':>8}{'p99 ms':>8}"
    )
    for r in results["offered"]:
        print(f"{r['worker']:<34}{r['requests']:>9}{r.get('cloud', 0):>7}{r['timeouts']:>8}"
              f"{r.get('cloud_busy', 0):>6}{r['p50_ms']:>8}{r['p99_ms']:>8}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
