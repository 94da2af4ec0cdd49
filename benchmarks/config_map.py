"""Configuration-map speed: the operating space and the best point for 100 link states.

For each profile the whole build is timed: the operating space (every split x the active exits
x 13 thresholds, from 1,000 evaluation samples per candidate exit) and then the map over a
10 x 10 grid (bandwidth 0.05-100 Mbps, log-spaced; RTT 0-180 ms) for each objective. Targets
(issue #13): resnet50 in 50 ms or less, a synthetic 1,000-cut profile in 1 s or less.

The resnet50 profile is measured on this machine (the edge an emulated 6x slower copy, as in
benchmarks/planner.py); the exits' observations are synthetic (deeper exits surer and more often
right), since the timing does not depend on what they say. Prints a table, and with --json the
same rows as JSON. It reports; it never fails a test run on timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from inferedge.core.config_map import AccuracyFloor, Deadline, Objective, Priorities, build_map
from inferedge.core.operating_space import SpaceLimits, enumerate_space, spread_cuts
from inferedge.core.planner import Tables, build_tables
from inferedge.core.profile import MeasuredProfile
from inferedge.core.synthetic import synthetic_exits, synthetic_profile

TARGET_MS = {"resnet50": 50.0, "synthetic-1000": 1000.0}
SAMPLES = 1000
BANDWIDTHS = tuple(0.05 * 2000 ** (i / 9) for i in range(10))
RTTS = tuple(20.0 * i for i in range(10))


def objectives(t: Tables) -> dict[str, Objective]:
    """A deadline between the cloud's compute and the edge's, and the other objectives."""
    deadline = (t.cloud_ms(0, t.num_cuts) + t.edge_ms(t.num_cuts)) / 2
    return {
        "deadline": Deadline(deadline),
        "accuracy>=0.9,latency": AccuracyFloor(0.9),
        "accuracy>=0.9,cloud": AccuracyFloor(0.9, minimise="cloud_cost"),
        "priorities": Priorities(order=("accuracy", "latency"), max_latency_ms=deadline),
    }


def measure(
    name: str, edge: MeasuredProfile, cloud: MeasuredProfile, candidates: int, repeats: int
) -> list[dict[str, object]]:
    """Time the space and each objective's map on one profile pair."""
    t = build_tables(edge, cloud, 1)
    cuts = spread_cuts(t, candidates)
    exits, final = synthetic_exits(t.num_cuts, cuts, samples=SAMPLES, seed=t.num_cuts)
    limits = SpaceLimits(max_split=t.num_cuts)
    rows = []
    for label, objective in objectives(t).items():
        space_ms, map_ms, total_ms = [], [], []
        feasible = 0
        for _ in range(repeats):
            start = time.perf_counter()
            space = enumerate_space(t, exits, final, limits)
            built = time.perf_counter()
            mapped = build_map(space, BANDWIDTHS, RTTS, objective)
            done = time.perf_counter()
            space_ms.append((built - start) * 1e3)
            map_ms.append((done - built) * 1e3)
            total_ms.append((done - start) * 1e3)
            feasible = sum(e.feasible for e in mapped.entries)
        median = statistics.median(total_ms)
        splits = sorted({e.figures.point.split for e in mapped.entries})
        rows.append(
            {
                "profile": name,
                "cuts": t.num_cuts,
                "candidates": len(cuts),
                "points": len(space),
                "states": len(mapped.entries),
                "objective": label,
                "space_ms": round(statistics.median(space_ms), 2),
                "map_ms": round(statistics.median(map_ms), 2),
                "total_ms": round(median, 2),
                "feasible_states": feasible,
                "distinct_splits": len(splits),
                "target_ms": TARGET_MS.get(name),
                "meets_target": None if name not in TARGET_MS else median <= TARGET_MS[name],
            }
        )
    return rows


def main() -> None:
    """Build the maps, print the table (and JSON)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="Also print the results as JSON.")
    parser.add_argument("--skip-resnet50", action="store_true", help="Synthetic profiles only.")
    parser.add_argument(
        "--candidates", type=int, default=32,
        help="Candidate exits on the 1,000-cut profile, spread along the edge's cost (resnet50: "
        "one per cut).",
    )  # fmt: skip
    args = parser.parse_args()
    rows = []
    if not args.skip_resnet50:
        try:
            from planner import resnet50_profiles  # python benchmarks/config_map.py
        except ImportError:
            from benchmarks.planner import resnet50_profiles  # python -m benchmarks.config_map

        edge, cloud = resnet50_profiles()
        rows += measure("resnet50", edge, cloud, edge.num_cuts, args.repeats)
    edge = synthetic_profile(1000, ms_per_gflop=60, device_name="edge")
    cloud = synthetic_profile(1000, ms_per_gflop=6, device_name="cloud")
    rows += measure("synthetic-1000", edge, cloud, args.candidates, args.repeats)
    print(
        f"{'profile':<16}{'cuts':>5}{'cand':>5}{'points':>7}  {'objective':<22}"
        f"{'space ms':>9}{'map ms':>8}{'total ms':>9}{'splits':>7}{'target':>8}"
    )
    for r in rows:
        target = "" if r["target_ms"] is None else ("ok" if r["meets_target"] else "MISSED")
        print(
            f"{r['profile']:<16}{r['cuts']:>5}{r['candidates']:>5}{r['points']:>7}  "
            f"{r['objective']:<22}{r['space_ms']:>9.1f}{r['map_ms']:>8.1f}{r['total_ms']:>9.1f}"
            f"{r['distinct_splits']:>7}{target:>8}"
        )
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
