"""Energy tuning on the emulated Xavier NX: EcoGD against its baselines, pattern by pattern.

For each arrival pattern E0 and L0 are measured at the maximum settings, then every optimiser is
driven window by window by the simpy simulator (`inferedge.local.knob_simulator.tune`) and its
choice is measured once more. Printed per pattern and optimiser:

- converged_cost: the cost ½(E/E0 + L/L0) of that last window at the optimiser's choice;
- exploration_cost: the excess cost over converged_cost summed over the windows before the
  optimiser first called itself converged (all windows when it never did);
- mean_ms, p95_ms, energy_j_per_request: that last window's latency and busy energy per request.

Optimisers: `ecogd` (EcoGD with its batch scan, the default), `ecogd-published` (EcoGD as
published, shown for the record), `grid`, `linear`, `max`, `dvfs` (the default governors
run both clocks, modelled batch by batch in `inferedge.local.governor`, at batch 8 and at batch
16, EcoEdgeInfer's two settings; the better of the two is `dvfs`, each is listed too), `bayes`
(optuna's Gaussian-process sampler, 100 trials) and `bandit` (ε-greedy). Targets from issue
#14, on the fixed and bursty patterns: EcoGD within 5 % of grid's converged cost, with at most 1/5
of grid's exploration cost, and at least 19 % below `dvfs`. Every figure is EMULATED (a modelled
device, see docs/energy-tuning.md). This script reports; it never fails a test run on its
figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferedge.core.ecogd import EcoGD
from inferedge.core.emulated_device import EmulatedDevice
from inferedge.core.emulated_device import xavier_nx as emulated_xavier_nx
from inferedge.core.knob_search import EpsilonGreedy, GridSearch, LinearSweep, MaxSettings
from inferedge.core.knobs import Optimiser, Reference, SearchSpace, xavier_nx
from inferedge.local.arrivals import ArrivalPattern, parse_pattern
from inferedge.local.governor import DefaultGovernors, GovernorModel
from inferedge.local.knob_simulator import TuningRun, measure_reference, tune
from inferedge.runtime.bayes_search import BayesianSearch

PATTERNS = ("fixed:50ms", "fixed:90ms", "bursty:10/500ms", "bursty:10/900ms", "poisson:70ms")
TARGET_PATTERNS = ("fixed:50ms", "fixed:90ms", "bursty:10/500ms", "bursty:10/900ms")
WITHIN_GRID = 0.05
EXPLORATION_SHARE = 0.2
BELOW_DVFS = 0.19
DVFS_BATCHES = (8, 16)

Build = Callable[[SearchSpace, Reference, EmulatedDevice, int], Optimiser]


@dataclass(frozen=True)
class Entry:
    """How to build one optimiser and how many windows to give it."""

    build: Build
    windows: Callable[[SearchSpace], int]
    governed: bool = False
    """Whether the device's default governors run the clocks (the `dvfs` entries)."""


ENTRIES: dict[str, Entry] = {
    "ecogd": Entry(lambda s, r, d, seed: EcoGD(s, r, rng=random.Random(seed)), lambda s: 300),
    "ecogd-published": Entry(
        lambda s, r, d, seed: EcoGD(s, r, rng=random.Random(seed), batch_scan=False),
        lambda s: 300,
    ),
    "grid": Entry(lambda s, r, d, seed: GridSearch(s, r), lambda s: s.size + 1),
    "linear": Entry(lambda s, r, d, seed: LinearSweep(s, r), lambda s: 100),
    "max": Entry(lambda s, r, d, seed: MaxSettings(s), lambda s: 5),
    "bayes": Entry(lambda s, r, d, seed: BayesianSearch(s, r, seed=seed), lambda s: 110),
    "bandit": Entry(
        lambda s, r, d, seed: EpsilonGreedy(s, r, rng=random.Random(seed)), lambda s: 1000
    ),
    **{
        f"dvfs-b{batch}": Entry(
            lambda s, r, d, seed, b=batch: DefaultGovernors(d, batch=b),  # type: ignore[misc]
            lambda s: 5,
            governed=True,
        )
        for batch in DVFS_BATCHES
    },
}


def summary(run: TuningRun) -> dict[str, Any]:
    """The figures the issue asks for, plus where the optimiser settled and when."""
    return {
        "converged_cost": round(run.converged_cost, 4),
        "exploration_cost": round(run.exploration_cost, 3),
        "mean_ms": round(run.mean_ms, 1),
        "p95_ms": round(run.p95_ms, 1),
        "energy_j_per_request": round(run.energy_j_per_request, 5),
        "converged_at": run.converged_at,
        "windows": len(run.windows),
        "setting": [run.best.cpu_step, run.best.gpu_step, run.best.batch],
        # the clocks it ran at while busy: the setting's own, or where the governors took them
        "cpu_mhz": round(run.final.cpu_mhz),
        "gpu_mhz": round(run.final.gpu_mhz),
    }


def run_pattern(
    pattern: ArrivalPattern, names: list[str], seed: int
) -> tuple[dict[str, dict[str, Any]], dict[str, TuningRun]]:
    """Every optimiser in `names` on one pattern, each from the same seed."""
    device, space = emulated_xavier_nx(), xavier_nx()
    reference = measure_reference(device, space, pattern, rng=random.Random(seed))
    results: dict[str, dict[str, Any]] = {}
    runs: dict[str, TuningRun] = {}
    for name in names:
        entry = ENTRIES[name]
        run = tune(
            entry.build(space, reference, device, seed),
            device,
            pattern,
            entry.windows(space),
            rng=random.Random(seed),
            reference=reference,
            governor=GovernorModel() if entry.governed else None,
        )
        results[name], runs[name] = summary(run), run
    dvfs = [n for n in results if n.startswith("dvfs-")]
    if dvfs:
        better = min(dvfs, key=lambda n: results[n]["converged_cost"])
        results["dvfs"] = {**results[better], "from": better}
    return results, runs


def check_targets(pattern: str, results: dict[str, dict[str, Any]]) -> list[str]:
    """One line per target the issue sets, with its verdict."""
    if pattern not in TARGET_PATTERNS or not {"ecogd", "grid", "dvfs"} <= results.keys():
        return []
    eco, grid, dvfs = results["ecogd"], results["grid"], results["dvfs"]
    e_cost, g_cost, d_cost = eco["converged_cost"], grid["converged_cost"], dvfs["converged_cost"]
    e_expl, g_expl = eco["exploration_cost"], grid["exploration_cost"]
    checks = [
        (f"ecogd {e_cost / g_cost - 1:+.1%} vs grid's cost", e_cost <= g_cost * (1 + WITHIN_GRID)),
        (
            f"ecogd exploration {e_expl / g_expl:.1%} of grid's",
            e_expl <= g_expl * EXPLORATION_SHARE,
        ),
        (f"ecogd {1 - e_cost / d_cost:.1%} below dvfs", e_cost <= d_cost * (1 - BELOW_DVFS)),
    ]
    return [f"  {'met' if ok else 'MISSED'}: {text}" for text, ok in checks]


def plot(runs: dict[str, dict[str, TuningRun]], path: Path) -> None:
    """EcoGD's cost and knob settings window by window, with grid's converged cost, by pattern."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    patterns = [p for p in runs if "ecogd" in runs[p]]
    fig, axes = plt.subplots(2, len(patterns), figsize=(4.2 * len(patterns), 6), squeeze=False)
    for column, pattern in enumerate(patterns):
        eco = runs[pattern]["ecogd"]
        shown = eco.windows[: (eco.converged_at or len(eco.windows)) + 40]
        top, bottom = axes[0][column], axes[1][column]
        top.plot([w.cost for w in shown], label="ecogd", lw=1)
        if "grid" in runs[pattern]:
            top.axhline(runs[pattern]["grid"].converged_cost, color="k", ls="--", label="grid best")
        if "bayes" in runs[pattern]:
            bayes = runs[pattern]["bayes"].windows[: len(shown)]
            top.plot([w.cost for w in bayes], label="bayes", lw=0.8, alpha=0.6)
        top.set_title(f"{pattern} (emulated)")
        top.set_ylabel("cost ½(E/E0 + L/L0)")
        top.legend(fontsize=7)
        for label, values in (
            ("cpu step", [w.setting.cpu_step for w in shown]),
            ("gpu step", [w.setting.gpu_step for w in shown]),
            ("batch", [w.setting.batch for w in shown]),
        ):
            bottom.plot(values, label=label, drawstyle="steps-post")
        bottom.set_xlabel("window")
        bottom.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    """Run the optimisers, print the table and the targets, optionally JSON and a plot."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patterns", nargs="+", default=list(PATTERNS), metavar="PATTERN")
    parser.add_argument(
        "--optimisers", nargs="+", default=list(ENTRIES), choices=list(ENTRIES), metavar="NAME"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    parser.add_argument("--plot", type=Path, help="Write a PNG of EcoGD's runs here.")
    args = parser.parse_args()
    try:
        patterns = {p: parse_pattern(p) for p in args.patterns}
    except ValueError as exc:
        parser.error(str(exc))
    table: dict[str, dict[str, dict[str, Any]]] = {}
    runs: dict[str, dict[str, TuningRun]] = {}
    for name, pattern in patterns.items():
        print(f"{name}: ...", file=sys.stderr, flush=True)
        table[name], runs[name] = run_pattern(pattern, args.optimisers, args.seed)
    if args.json:
        print(json.dumps({"emulated": True, "device": "xavier-nx", "patterns": table}, indent=1))
        return
    print("EMULATED Xavier NX (modelled clocks and power; see docs/energy-tuning.md)")
    header = f"{'pattern':17} {'optimiser':16} {'cost':>6} {'explore':>8} {'mean ms':>8} "
    print(header + f"{'p95 ms':>8} {'mJ/req':>7} {'conv@':>6}  setting (busy MHz cpu/gpu)")
    for name, results in table.items():
        for optimiser, row in results.items():
            print(
                f"{name:17} {optimiser:16} {row['converged_cost']:6.3f} "
                f"{row['exploration_cost']:8.2f} {row['mean_ms']:8.1f} {row['p95_ms']:8.1f} "
                f"{row['energy_j_per_request'] * 1000:7.2f} "
                f"{row['converged_at'] if row['converged_at'] is not None else '-':>6}  "
                f"{row['setting']} ({row['cpu_mhz']}/{row['gpu_mhz']})"
            )
        for line in check_targets(name, results):
            print(line)
    if args.plot:
        plot(runs, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
