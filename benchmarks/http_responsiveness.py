"""Edge responsiveness under a large body: how long a health check waits while a big infer
request is received, decoded and answered.

The edge app runs in its own process (so the client's work never shares its event loop) with a
stub dataplane: only the HTTP layer is measured, not the model. The client sends one large
request (JSON with full-precision numbers, or the binary data extension) and meanwhile polls
`GET /v2/health/live` back to back; the table gives the health checks' median and worst
latency during the request, next to an idle baseline. Target: a 50 MB body delays a
concurrent health check by < 100 ms (worst minus idle median).

`--http-module PATH` serves another version of `inferedge/runtime/http.py` (e.g. the one
before the off-loop decoder, from `git show`), called as `make_app(dataplane, model_name=...)`.

Prints a table and, with --json, the same figures as JSON. It reports; it never fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import statistics
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
import numpy as np

SAMPLE = (3, 128, 128)  # large samples: a 50 MB body stays within the rows limit
MODEL = "bench"


def _serve(port_queue: Any, http_module: str | None) -> None:
    from aiohttp import web

    from inferedge.runtime.dataplane import EdgeDataplane
    from inferedge.runtime.messages import Answer

    if http_module:
        spec = importlib.util.spec_from_file_location("bench_http", http_module)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        make_app = module.make_app
    else:
        from inferedge.runtime.http import make_app

    class StubEdge(EdgeDataplane):
        async def infer(self, x: np.ndarray) -> list[Answer]:
            return [Answer(prediction=0, confidence=1.0, exit_index=0, cut_index=1,
                           location="edge", plan_hash="bench", timings={})] * len(x)  # fmt: skip

    async def offload(*_: Any) -> Any:
        raise ConnectionError("no cloud in this benchmark")

    edge = StubEdge(None, threshold=1.0, offload=offload, offload_timeout_s=1.0)
    edge._partition = SimpleNamespace(  # type: ignore[assignment]
        input_shape=SAMPLE, plan_hash="bench", part="edge"
    )

    async def run() -> None:
        runner = web.AppRunner(make_app(edge, model_name=MODEL), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(run())


def _body(megabytes: int, binary: bool) -> tuple[bytes, dict[str, str], int]:
    per_row = int(np.prod(SAMPLE))
    if binary:
        rows = max(1, megabytes * 1_000_000 // (per_row * 4))
        raw = np.random.default_rng(0).standard_normal((rows, *SAMPLE)).astype("<f4").tobytes()
        header = json.dumps({"inputs": [{"name": "input", "shape": [rows, *SAMPLE],
                             "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}],
                             "parameters": {"binary_data_output": True}}).encode()  # fmt: skip
        return header + raw, {"Inference-Header-Content-Length": str(len(header))}, rows
    rows = max(1, megabytes * 1_000_000 // (per_row * 20))  # repr of a float64: ~20 bytes
    values = np.random.default_rng(0).standard_normal(rows * per_row)
    data = ",".join(map(repr, values.tolist()))
    text = (f'{{"inputs": [{{"name": "input", "shape": [{rows}, {", ".join(map(str, SAMPLE))}], '
            f'"datatype": "FP32", "data": [{data}]}}]}}')  # fmt: skip
    return text.encode(), {"Content-Type": "application/json"}, rows


def _send(job: tuple[str, int, bool], ready: Any, go: Any, results: Any) -> None:
    """Post one large request from a process of its own, so its sending never delays the
    health checks' client."""
    base, size, binary = job
    body, headers, rows = _body(size, binary)
    ready.put((len(body), rows))
    go.wait()

    async def post() -> tuple[int, float]:
        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()
            url = f"{base}/v2/models/{MODEL}/infer"
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status, (time.perf_counter() - started) * 1000

    results.put(asyncio.run(post()))


async def _measure(base: str, size: int, binary: bool) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    sender = context.Process(target=_send, args=((base, size, binary), ready, go, results))
    sender.start()
    body_bytes, rows = ready.get(timeout=300)
    async with aiohttp.ClientSession() as session:

        async def health() -> float:
            started = time.perf_counter()
            async with session.get(f"{base}/v2/health/live") as response:
                await response.read()
            return (time.perf_counter() - started) * 1000

        for _ in range(20):
            await health()  # warm the connection pool
        idle = [await health() for _ in range(50)]
        go.set()
        during = []
        while results.empty():
            during.append(await health())
    status, infer_ms = results.get()
    sender.join()
    return {"body_mb": round(body_bytes / 1e6, 1), "encoding": "binary" if binary else "json",
            "rows": rows, "status": status, "infer_ms": infer_ms,
            "idle_p50_ms": statistics.median(idle), "health_checks": len(during),
            "health_p50_ms": statistics.median(during), "health_max_ms": max(during),
            "delay_ms": max(during) - statistics.median(idle)}  # fmt: skip


def main() -> None:
    """Measure each body size and encoding on one served edge."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mb", default="10,50", help="Body sizes, in MB.")
    parser.add_argument("--repeats", type=int, default=3, help="Requests per case (worst kept).")
    parser.add_argument("--http-module", help="Serve this http.py instead of the package's.")
    parser.add_argument("--json", action="store_true", help="Also print the results as JSON.")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    server = context.Process(target=_serve, args=(ports, args.http_module))
    server.start()
    base = f"http://127.0.0.1:{ports.get(timeout=60)}"
    rows = []
    try:
        for size in map(int, args.sizes_mb.split(",")):
            for binary in (False, True):
                runs = [asyncio.run(_measure(base, size, binary)) for _ in range(args.repeats)]
                rows.append(max(runs, key=lambda r: r["delay_ms"]))
    finally:
        server.terminate()
        server.join()
    head = ("body MB", "encoding", "rows", "status", "infer ms", "idle p50", "checks", "p50 ms",
            "max ms", "delay ms")  # fmt: skip
    print(" ".join(f"{h:>9}" for h in head))
    for r in rows:
        cells = (r["body_mb"], r["encoding"], r["rows"], r["status"], f"{r['infer_ms']:.1f}",
                 f"{r['idle_p50_ms']:.2f}", r["health_checks"], f"{r['health_p50_ms']:.2f}",
                 f"{r['health_max_ms']:.1f}", f"{r['delay_ms']:.1f}")  # fmt: skip
        print(" ".join(f"{c:>9}" for c in cells))
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
