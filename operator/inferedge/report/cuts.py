"""Infer-EDGE's per-cut analysis as markdown tables and PNG plots (`inferedge analyze`)."""

from __future__ import annotations

from pathlib import Path

from inferedge.core.cut_analysis import CutAnalysis
from inferedge.core.errors import InferedgeError


def _energy(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def analysis_markdown(analysis: CutAnalysis) -> str:
    """The per-cut table, the per-split table and the best cuts, as markdown."""
    bandwidths = sorted({r.bandwidth_mbps for r in analysis.splits})
    lines = [
        f"# Cut points of {analysis.model}: edge {analysis.edge_device}, cloud "
        f"{analysis.cloud_device}",
        "",
        f"RTT {analysis.rtt_ms:g} ms; edge energy counts the measured compute, the radio at "
        f"{analysis.radio_w:g} W while it sends and {analysis.idle_w:g} W while it waits "
        "(both powers are the user's figures, not measured).",
        "",
        "| cut | name | segment ms | edge ms (cumulative) | output bytes | edge mJ (cumulative) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for c in analysis.cuts:
        lines.append(
            f"| {c.cut} | {c.name} | {c.segment_ms:.3f} | {c.edge_ms:.3f} | {c.output_bytes} | "
            f"{_energy(c.edge_energy_mj)} |"
        )
    header = " | ".join(f"{b:g} Mbps: ms | {b:g} Mbps: edge mJ" for b in bandwidths)
    lines += ["", f"| split at cut | {header} |", "|---:|" + "---:|---:|" * len(bandwidths)]
    by_cut: dict[int, list[str]] = {}
    for r in analysis.splits:
        by_cut.setdefault(r.cut, []).extend([f"{r.latency_ms:.2f}", _energy(r.edge_energy_mj)])
    for cut, cells in sorted(by_cut.items()):
        lines.append(f"| {cut} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| bandwidth | best cut by latency | best cut by edge energy |",
        "|---:|---:|---:|",
    ]
    for b in analysis.best:
        energy = "- (no energy measured)" if b.by_energy is None else str(b.by_energy)
        lines.append(f"| {b.bandwidth_mbps:g} Mbps | {b.by_latency} | {energy} |")
    return "\n".join(lines) + "\n"


def plot_analysis(analysis: CutAnalysis, out_dir: Path) -> list[Path]:
    """Write the split latency and split energy against the cut, one curve per bandwidth, and
    the output size per cut; returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InferedgeError("plots need matplotlib: pip install 'inferedge[plots]'") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    bandwidths = sorted({r.bandwidth_mbps for r in analysis.splits})
    has_energy = all(r.edge_energy_mj is not None for r in analysis.splits)
    panels = 3 if has_energy else 2
    fig, axes = plt.subplots(panels, 1, figsize=(8, 3 * panels), sharex=True)
    cuts = [c.cut for c in analysis.cuts]
    axes[0].bar(cuts, [c.output_bytes / 1024 for c in analysis.cuts], color="grey")
    axes[0].set_ylabel("output (KiB)")
    axes[0].set_title(
        f"{analysis.model}: edge {analysis.edge_device}, cloud {analysis.cloud_device}"
    )
    for i, bandwidth in enumerate(bandwidths):
        rows = [r for r in analysis.splits if r.bandwidth_mbps == bandwidth]
        best = next(b for b in analysis.best if b.bandwidth_mbps == bandwidth)
        axes[1].plot(
            cuts, [r.latency_ms for r in rows], "o-", color=f"C{i}", label=f"{bandwidth:g} Mbps"
        )
        axes[1].scatter([best.by_latency], [rows[best.by_latency].latency_ms], s=120,
                        facecolors="none", edgecolors=f"C{i}")  # fmt: skip
        if has_energy:
            energy = [r.edge_energy_mj or 0.0 for r in rows]
            axes[2].plot(cuts, energy, "o-", color=f"C{i}", label=f"{bandwidth:g} Mbps")
            if best.by_energy is not None:
                axes[2].scatter([best.by_energy], [energy[best.by_energy]], s=120,
                                facecolors="none", edgecolors=f"C{i}")  # fmt: skip
    axes[1].set_ylabel("end-to-end latency (ms)")
    axes[1].set_yscale("log")
    axes[1].legend(fontsize=8)
    if has_energy:
        axes[2].set_ylabel("edge energy (mJ)")
        axes[2].set_yscale("log")
        axes[2].legend(fontsize=8)
    axes[-1].set_xlabel("split after cut (circled: the best)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out_dir / "cuts.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
