"""Planner speed: a real resnet50 profile and synthetic profiles up to 1,000 cut points.

Prints a table and, with --json, the same figures as JSON. Targets (Edgent reports under 1 ms for
its search): resnet50 under 1 ms median, 1,000 cut points under 10 ms median. This script reports;
it never fails a test run on timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from inferedge.core.plan import PlanRequest
from inferedge.core.planner import make_plan
from inferedge.core.profile import MeasuredProfile
from inferedge.core.synthetic import synthetic_profile

TARGET_MS = {"resnet50": 1.0, "synthetic-1000": 10.0}


def resnet50_profiles() -> tuple[MeasuredProfile, MeasuredProfile]:
    """Profile resnet50 (3x224x224) once on this machine; the edge is an emulated 6x slower copy."""
    from inferedge.dnn.frameworks import get_backend
    from inferedge.dnn.protocols import ProfileRequest

    backend = get_backend("torch")
    base = {
        "model_ref": "resnet50",
        "num_classes": 1000,
        "input_shape": (3, 224, 224),
        "batch_sizes": (1,),
        "warmup": 1,
        "repeats": 3,
    }
    cloud = backend.profile(ProfileRequest(**base, device_name="cloud"))  # type: ignore[arg-type]
    edge = backend.profile(
        ProfileRequest(**base, device_name="edge", emulate_slowdown=6.0)  # type: ignore[arg-type]
    )
    return edge, cloud


def time_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall time of `fn` in milliseconds, `repeats` times, after one warm-up call."""
    fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def main() -> None:
    """Run every strategy and placement on every profile pair and report timings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="Also print the results as JSON.")
    parser.add_argument("--skip-resnet50", action="store_true", help="Synthetic profiles only.")
    args = parser.parse_args()

    pairs: dict[str, tuple[MeasuredProfile, MeasuredProfile]] = {}
    if not args.skip_resnet50:
        pairs["resnet50"] = resnet50_profiles()
    for n in (100, 1000):
        pairs[f"synthetic-{n}"] = (
            synthetic_profile(n, ms_per_gflop=60, device_name="edge"),
            synthetic_profile(n, ms_per_gflop=6, device_name="cloud"),
        )
    rows = []
    for name, (edge, cloud) in pairs.items():
        for strategy in ("latency", "memory", "min-latency", "deadline"):
            for placement in ("linear", "pareto"):
                request = PlanRequest(
                    strategy=strategy,  # type: ignore[arg-type]
                    placement=placement,  # type: ignore[arg-type]
                    edge_exits=3,
                    cloud_exits=3,
                    memory_fraction=1.0,
                    deadline_ms=1e6,
                )
                times = time_ms(lambda e=edge, c=cloud, r=request: make_plan(e, c, r), args.repeats)
                median = statistics.median(times)
                rows.append(
                    {
                        "profile": name,
                        "cuts": edge.num_cuts,
                        "strategy": strategy,
                        "placement": placement,
                        "median_ms": round(median, 4),
                        "p95_ms": round(sorted(times)[int(0.95 * (len(times) - 1))], 4),
                        "target_ms": TARGET_MS.get(name),
                        "meets_target": None if name not in TARGET_MS else median < TARGET_MS[name],
                    }
                )
    header = f"{'profile':<16}{'cuts':>6}  {'strategy':<12}{'placement':<10}"
    print(f"{header}{'median ms':>10}{'p95 ms':>9}{'target':>8}")
    for r in rows:
        target = "" if r["target_ms"] is None else ("ok" if r["meets_target"] else "MISSED")
        print(
            f"{r['profile']:<16}{r['cuts']:>6}  {r['strategy']:<12}{r['placement']:<10}"
            f"{r['median_ms']:>10.3f}{r['p95_ms']:>9.3f}{target:>8}"
        )
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
