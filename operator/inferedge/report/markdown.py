"""Markdown tables of sweep reports, one per plan, and a comparison across plans."""

from __future__ import annotations

from collections.abc import Sequence

from inferedge.core.sweep import Outcome, SweepReport

MIB = 1024 * 1024


def _energy(o: Outcome) -> str:
    return "n/a" if o.edge_energy_mj is None else f"{o.edge_energy_mj:.1f}"


def _row(o: Outcome, marker: str = "") -> str:
    shares = " / ".join(f"{s:.0%}" for s in o.exit_shares)
    return (
        f"| {o.name}{marker} | {o.accuracy:.2%} | {shares} | {o.offload_rate:.0%} | "
        f"{o.latency_ms:.2f} | {o.latency_p95_ms:.2f} | {o.transfer_bytes / 1024:.1f} | "
        f"{_energy(o)} | {o.cloud_usd_per_million:.2f} | {o.edge_memory_bytes / MIB:.1f} | "
        f"{o.cloud_memory_bytes / MIB:.1f} |"
    )


_HEADER = (
    "| operating point | accuracy | exit shares | offload | latency ms | p95 ms | KiB shipped "
    "| edge mJ | cloud $/M req | edge MiB | cloud MiB |\n"
    "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def sweep_markdown(title: str, report: SweepReport, chosen: Outcome | None = None) -> str:
    """One plan's sweep: its exits, every threshold, the baselines and the oracle."""
    exits = "\n".join(
        f"| {i} | {part} | {cut} | {acc:.2%} |"
        for i, (part, cut, acc) in enumerate(
            zip(report.exit_parts, report.exit_cuts, report.exit_accuracy, strict=True), start=1
        )
    )
    rows = "\n".join(_row(r, " ⟵ chosen" if chosen == r else "") for r in report.rows)
    baselines = "\n".join(
        _row(o) for o in (report.edge_only, report.cloud_only, report.split_no_exits, report.oracle)
    )
    return f"""## {title}

Plan `{report.plan_hash}`, {report.samples} samples of the `{report.split}` split, confidence
`{report.confidence}`. Exit shares list the exits in path order, then the final classifier.

| exit | part | cut | accuracy on its own |
|---:|---|---:|---:|
{exits}

{_HEADER}
{rows}
{baselines}
"""


def comparison_markdown(entries: Sequence[tuple[str, SweepReport, Outcome]]) -> str:
    """One row per plan at its chosen threshold, with its edge-only baseline beside it."""
    lines = [
        "| plan | c_thr | accuracy | full model | latency ms | edge-only ms | saving vs edge-only "
        "| offload | cloud $/M req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, report, chosen in entries:
        edge_only = report.edge_only.latency_ms
        saving = 1 - chosen.latency_ms / edge_only if edge_only > 0 else 0.0
        lines.append(
            f"| {label} | {chosen.threshold:.2f} | {chosen.accuracy:.2%} | "
            f"{report.edge_only.accuracy:.2%} | {chosen.latency_ms:.2f} | {edge_only:.2f} | "
            f"{saving:.0%} | {chosen.offload_rate:.0%} | {chosen.cloud_usd_per_million:.2f} |"
        )
    return "\n".join(lines) + "\n"
