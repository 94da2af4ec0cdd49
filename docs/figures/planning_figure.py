"""Draw docs/figures/planning.png from the planner itself, so the figure cannot drift from the code.

Run: .venv/bin/python docs/figures/planning_figure.py [OUTPUT.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from inferedge.core.link import Link
from inferedge.core.placement import PARETO_80_20_ALPHA, linear_targets, pareto_targets
from inferedge.core.plan import PlanRequest
from inferedge.core.planner import build_tables, edge_memory_bytes, make_plan
from inferedge.core.synthetic import synthetic_profile


def draw(output: Path) -> None:
    """Left: the split strategies on one synthetic profile. Right: exit placement targets."""
    edge = synthetic_profile(40, seed=7, ms_per_gflop=60, device_name="edge")
    cloud = synthetic_profile(40, seed=7, ms_per_gflop=6, device_name="cloud")
    link = Link(bandwidth_mbps=20, rtt_ms=20)
    t = build_tables(edge, cloud, 1)
    ks = list(range(t.num_cuts + 1))
    e = [t.edge_ms(k) for k in ks]
    c = [t.cloud_ms(k, t.num_cuts) for k in ks]
    tr = [link.transfer_ms(t.transfer_bytes[k]) if k < t.num_cuts else 0.0 for k in ks]
    total = [a + b + x for a, b, x in zip(e, c, tr, strict=True)]
    need = edge_memory_bytes(t)
    splits = {
        s: make_plan(edge, cloud, PlanRequest(strategy=s, link=link)).split  # type: ignore[arg-type]
        for s in ("latency", "memory", "min-latency")
    }

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8))
    ax.plot(ks, e, label="E(k): edge, segments 1..k")
    ax.plot(ks, c, label="C(k, K): cloud, segments k+1..K")
    ax.plot(ks, tr, label="T(k): ship cut k's tensor")
    ax.plot(ks, total, "k", lw=2, label="E + T + C")
    ax.axhline(t.cloud_ms(0, t.num_cuts), color="grey", ls=":", label="whole model in the cloud")
    colours = {"latency": "tab:red", "memory": "tab:purple", "min-latency": "tab:green"}
    for name, k in splits.items():
        ax.axvline(k, color=colours[name], ls="--", label=f"{name} split: cut {k}")
    mem = ax.twinx()
    mem.plot(ks, [n / need[-1] for n in need], color="tab:purple", alpha=0.35)
    mem.axhline(0.7, color="tab:purple", alpha=0.35, ls=":")
    mem.set_ylabel("edge memory share of prefix (faint)")
    ax.set_xlabel("cut point k")
    ax.set_ylabel("ms")
    ax.set_title("Split strategies (synthetic 40-cut profile, 20 Mbps / 20 ms)")
    ax.legend(fontsize=7, loc="upper left")

    n = 3
    for row, (label, m) in enumerate((("edge part (m = n)", n), ("cloud part (m = n + 1)", n + 1))):
        lin = linear_targets(n, m)
        par = pareto_targets(n, m, 0.03, PARETO_80_20_ALPHA)
        bx.scatter(lin, [row + 0.15] * n, marker="o", color="tab:blue")
        bx.scatter(par, [row - 0.15] * n, marker="^", color="tab:orange")
        bx.text(1.02, row, label, va="center", fontsize=8)
    bx.scatter([], [], marker="o", color="tab:blue", label="linear: u = j/m")
    bx.scatter([], [], marker="^", color="tab:orange", label="pareto: u = F^-1(j/m), alpha 1.161")
    bx.set_xlim(0, 1.35)
    bx.set_ylim(-0.6, 1.6)
    bx.set_yticks([])
    bx.set_xlabel("normalised cumulative cost u within the part (u_min = 0.03)")
    bx.set_title("Exit targets for n = 3, before snapping to cut points")
    bx.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    draw(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("planning.png"))
