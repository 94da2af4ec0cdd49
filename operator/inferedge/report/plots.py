"""PNG plots of sweeps: accuracy against expected latency and against cloud cost."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from inferedge.core.errors import InferedgeError
from inferedge.core.sweep import SweepReport


def plot_sweeps(entries: Sequence[tuple[str, SweepReport]], out_dir: Path) -> list[Path]:
    """Write accuracy-vs-latency and accuracy-vs-cost plots; one curve per plan."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InferedgeError("plots need matplotlib: pip install 'inferedge[plots]'") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    axes = (
        ("latency_ms", "expected latency (ms)", "accuracy_vs_latency.png"),
        ("cloud_usd_per_million", "cloud cost ($ per million requests)", "accuracy_vs_cost.png"),
    )
    for field, label, name in axes:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, (plan_label, report) in enumerate(entries):
            colour = f"C{i}"
            xs = [getattr(r, field) for r in report.rows]
            ys = [r.accuracy * 100 for r in report.rows]
            ax.plot(xs, ys, "o-", color=colour, label=f"{plan_label}: c_thr 0.30..0.90")
            for r in (report.rows[0], report.rows[-1]):
                ax.annotate(f"{r.threshold:.2f}", (getattr(r, field), r.accuracy * 100),
                            fontsize=7, color=colour)  # fmt: skip
            oracle = report.oracle
            ax.scatter([getattr(oracle, field)], [oracle.accuracy * 100], marker="*", s=90,
                       color=colour, label=f"{plan_label}: oracle")  # fmt: skip
        first = entries[0][1]
        for outcome, marker in ((first.edge_only, "s"), (first.cloud_only, "D")):
            ax.scatter([getattr(outcome, field)], [outcome.accuracy * 100], marker=marker,
                       color="black", label=outcome.name)  # fmt: skip
        ax.set_xlabel(label)
        ax.set_ylabel(f"accuracy on {first.split} (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
