"""The versions triangle (accuracy, latency, energy per version on each device class) as a
markdown table and a PNG, for `inferedge versions`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from inferedge.core.errors import InferedgeError
from inferedge.core.exploration import ExplorationRow, versions_front


def versions_markdown(table: Sequence[ExplorationRow]) -> str:
    """The exploration table, one row per (device class, version), front members marked."""
    lines = [
        "# Versions on each device class",
        "",
        "Latency is one request through the whole model; throughput one replica's best over the "
        "profiled batch sizes. * marks the versions no other beats on accuracy, latency and "
        "energy together. `from`: the profiles' estimate, or measured as served (one replica "
        "alone, latency one request at a time, throughput kept busy; EMULATED boards when the "
        "class is emulated).",
        "",
        "| device | version | accuracy | p50 ms | p95 ms | requests/s | batch | mJ/request "
        "| from |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for device in sorted({r.device for r in table}):
        front = set(versions_front(table, device))
        for r in sorted((r for r in table if r.device == device), key=lambda r: r.latency_p50_ms):
            energy = "-" if r.energy_mj is None else f"{r.energy_mj:.1f}"
            mark = " *" if r.version in front else ""
            lines.append(
                f"| {device} | {r.version}{mark} | {r.accuracy:.2%} | {r.latency_p50_ms:.2f} | "
                f"{r.latency_p95_ms:.2f} | {r.throughput:.1f} | {r.best_batch} | {energy} | "
                f"{'served' if r.measured else 'profile'} |"
            )
    return "\n".join(lines) + "\n"


def plot_versions(table: Sequence[ExplorationRow], out_dir: Path) -> Path:
    """Accuracy against latency per device class, the front joined, energy as marker size
    where measured; returns the file written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InferedgeError("plots need matplotlib: pip install 'inferedge[plots]'") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    energies = [r.energy_mj for r in table if r.energy_mj is not None]
    largest = max(energies) if energies else None
    for i, device in enumerate(sorted({r.device for r in table})):
        rows = [r for r in table if r.device == device]
        sizes = [
            40.0 if r.energy_mj is None or not largest else 40.0 + 260.0 * r.energy_mj / largest
            for r in rows
        ]
        ax.scatter([r.latency_p50_ms for r in rows], [r.accuracy * 100 for r in rows], s=sizes,
                   color=f"C{i}", alpha=0.7, label=device)  # fmt: skip
        for r in rows:
            ax.annotate(r.version, (r.latency_p50_ms, r.accuracy * 100), fontsize=7)
        front = [next(r for r in rows if r.version == v) for v in versions_front(table, device)]
        ax.plot([r.latency_p50_ms for r in front], [r.accuracy * 100 for r in front], "--",
                color=f"C{i}", linewidth=1)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("latency of one request (ms, median)")
    ax.set_ylabel("accuracy (%)")
    title = "versions: accuracy against latency"
    ax.set_title(title + (" (marker size: energy per request)" if energies else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / "versions.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
