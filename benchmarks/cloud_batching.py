"""Cloud throughput: the dynamic batcher under concurrent offloads vs a plain torch forward.

A zoo model is profiled, planned (no exits, so every row runs the whole cloud part) and
exported; its cloud partition is then driven two ways at each batch size B:

- plain: the loaded cloud segments called back to back on ready-made batches of B samples;
- batched: 2 x B concurrent clients each offloading one sample at a time through
  `CloudDataplane.handle`, which groups them into batches of up to B.

Prints a table and, with --json, the same figures as JSON. Target: the batched throughput is
at least 90% of the plain forward's. This script reports; it never fails a test run on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inferedge.core.manifest import Manifest
from inferedge.core.plan import Plan, PlanRequest
from inferedge.core.planner import make_plan
from inferedge.dnn.protocols import ProfileRequest
from inferedge.dnn.torch.backend import TorchBackend
from inferedge.dnn.torch.export import export_partitions, load_part, make_manifest
from inferedge.dnn.torch.graph import build_cut_graph
from inferedge.dnn.torch.loader import load_model
from inferedge.dnn.torch.workflow import TorchWorkflow
from inferedge.runtime.dataplane import CloudDataplane
from inferedge.runtime.partition import Partition
from inferedge.runtime.policy import BatchPolicy

TARGET_RATIO = 0.90
NEVER = 2.0  # a threshold no confidence reaches: no row leaves early


def export_plan(model: str, shape: tuple[int, ...], classes: int, out: Path) -> Manifest:
    """Profile, plan (memory split, no exits) and export `model` into `out`; its manifest."""
    base: dict[str, Any] = {"model_ref": model, "num_classes": classes, "input_shape": shape,
                            "batch_sizes": (1,), "warmup": 0, "repeats": 1}  # fmt: skip
    backend = TorchBackend()
    edge = backend.profile(ProfileRequest(**base, device_name="edge", emulate_slowdown=4.0))
    cloud = backend.profile(ProfileRequest(**base, device_name="cloud"))
    request = PlanRequest(strategy="memory", memory_fraction=0.3, edge_exits=0, cloud_exits=0)
    plan: Plan = make_plan(edge, cloud, request)
    torch.manual_seed(0)
    loaded = load_model(model, classes, shape)
    graph = build_cut_graph(loaded.module.eval(), torch.zeros(1, *shape), name=loaded.name)
    files, steps = export_partitions(graph, plan, {}, out)
    return make_manifest(plan, files, steps, None)


def cloud_partition(
    model: str, shape: tuple[int, ...], classes: int, out: Path
) -> tuple[Partition, list[torch.nn.Module]]:
    """`export_plan`, then its cloud part loaded, served and as the plain torch modules of its
    segments."""
    manifest = export_plan(model, shape, classes, out)
    modules = [step.segment for step in load_part(manifest, "cloud", out)]
    return Partition(manifest, "cloud", TorchWorkflow().load_part(manifest, "cloud", out)), modules


def plain_throughput(modules: list[torch.nn.Module], x: np.ndarray, batches: int) -> float:
    """Samples/s of the cloud segments called directly on batches of x's size.

    They run on a thread of their own, as the batcher's batches do, so both sides pay the
    same for thread placement.
    """
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(_plain_throughput, modules, x, batches).result()


def _plain_throughput(modules: list[torch.nn.Module], x: np.ndarray, batches: int) -> float:
    tensor = torch.from_numpy(x)

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            h = tensor
            for module in modules:
                h = module(h)
            return h

    for _ in range(3):
        forward()
    start = time.perf_counter()
    for _ in range(batches):
        forward()
    return batches * x.shape[0] / (time.perf_counter() - start)


async def batched_throughput(
    partition: Partition, sample: np.ndarray, batch_size: int, max_wait_ms: float, batches: int
) -> dict[str, float]:
    """Samples/s, mean batch, latency percentiles and busy share of 2 x B one-sample clients.

    `busy` is the share of the wall time the compute thread spent running batches: what is
    left is the batcher's own overhead (queueing, futures, answers), measured apart from
    however fast the neighbours on a shared machine let torch run.
    """
    plane = CloudDataplane(
        partition, batch_policy=BatchPolicy(batch_size, max_wait_ms), threshold=NEVER
    )
    latencies: list[float] = []
    sizes: list[int] = []
    compute_ms: list[float] = []

    async def client(requests: int, record: bool) -> None:
        for _ in range(requests):
            sent = time.perf_counter()
            answer = await plane.handle(sample, partition.plan_hash)
            if record:
                latencies.append((time.perf_counter() - sent) * 1000.0)
                sizes.append(answer.batch_size)
                # Each batch's compute time, shared out over the samples that rode in it.
                compute_ms.append(answer.compute_ms / answer.batch_size)

    clients = 2 * batch_size
    try:
        await asyncio.gather(*(client(3, False) for _ in range(clients)))  # warm-up
        per_client = max(batches * batch_size // clients, 1)
        start = time.perf_counter()
        await asyncio.gather(*(client(per_client, True) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    finally:
        await plane.aclose()
    latencies.sort()
    return {
        "samples_per_s": len(latencies) / elapsed,
        "mean_batch": statistics.fmean(sizes),
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))],
        "busy": sum(compute_ms) / 1000.0 / elapsed,
    }


def main() -> None:
    """Measure both ways at every batch size and report the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet18", help="Zoo name or module:callable.")
    parser.add_argument("--input-shape", default="3,64,64")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--batch-sizes", default="8,32", help="Comma-separated.")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--batches", type=int, default=20, help="Batches timed per run.")
    parser.add_argument("--rounds", type=int, default=5, help="Alternating runs of each way.")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's).")
    parser.add_argument("--json", action="store_true", help="Also print the results as JSON.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(int(d) for d in args.input_shape.split(","))
    with tempfile.TemporaryDirectory(prefix="inferedge-bench-") as tmp:
        partition, modules = cloud_partition(args.model, shape, args.num_classes, Path(tmp))
    plan = partition.manifest.plan
    rng = np.random.default_rng(0)
    rows = []
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        x = rng.standard_normal((batch_size, *partition.input_shape)).astype(np.float32)
        # Alternate the two ways and keep medians, so a neighbour's burst of CPU use on a
        # shared machine does not land on one side only.
        plains, runs = [], []
        for _ in range(args.rounds):
            plains.append(plain_throughput(modules, x, args.batches))
            runs.append(
                asyncio.run(
                    batched_throughput(partition, x[:1], batch_size, args.max_wait_ms, args.batches)
                )
            )
        plain = statistics.median(plains)
        batched = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        ratio = batched["samples_per_s"] / plain
        rows.append(
            {
                "model": args.model,
                "input_shape": list(shape),
                "split": plan.split,
                "cuts": plan.model.num_cuts,
                "torch_threads": torch.get_num_threads(),
                "batch_size": batch_size,
                "rounds": args.rounds,
                "max_wait_ms": args.max_wait_ms,
                "clients": 2 * batch_size,
                "plain_samples_per_s": round(plain, 1),
                "batched_samples_per_s": round(batched["samples_per_s"], 1),
                "ratio": round(ratio, 3),
                "mean_batch": round(batched["mean_batch"], 2),
                "p50_ms": round(batched["p50_ms"], 2),
                "p99_ms": round(batched["p99_ms"], 2),
                "busy": round(batched["busy"], 3),
                "meets_target": ratio >= TARGET_RATIO,
            }
        )
    print(f"{args.model} {args.input_shape}: cloud part = cuts {plan.split}..{plan.final_cut}")
    print(f"{'batch':>6}{'clients':>8}{'plain/s':>10}{'batched/s':>11}{'ratio':>7}"
          f"{'mean B':>8}{'p50 ms':>8}{'p99 ms':>8}{'busy':>7}{'target':>8}")  # fmt: skip
    for r in rows:
        print(
            f"{r['batch_size']:>6}{r['clients']:>8}{r['plain_samples_per_s']:>10.1f}"
            f"{r['batched_samples_per_s']:>11.1f}{r['ratio']:>7.3f}{r['mean_batch']:>8.2f}"
            f"{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}{r['busy']:>7.3f}"
            f"{'ok' if r['meets_target'] else 'MISSED':>8}"
        )
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
