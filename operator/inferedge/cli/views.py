"""Rich renderings of profiles and plans for the terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from inferedge.core.cut_analysis import CutAnalysis
from inferedge.core.exploration import ExplorationRow, versions_front
from inferedge.core.plan import Plan
from inferedge.core.profile import CutPoint, MeasuredProfile
from inferedge.core.sweep import Outcome, SweepReport

if TYPE_CHECKING:
    from inferedge.local.measured import MeasuredReport

MIB = 1024 * 1024


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def _mib(nbytes: int) -> str:
    return f"{nbytes / MIB:,.2f}"


def cut_table(cuts: tuple[CutPoint, ...], title: str) -> Table:
    """Every cut point with its tensor and the cumulative cost up to it."""
    table = Table(title=title, title_justify="left")
    table.add_column("cut", justify="right")
    table.add_column("name")
    table.add_column("shape")
    table.add_column("KiB", justify="right")
    table.add_column("cum GFLOPs", justify="right")
    table.add_column("cum params MiB", justify="right")
    for c in cuts:
        table.add_row(
            str(c.index),
            c.name,
            _shape(c.shape),
            f"{c.activation_bytes / 1024:,.1f}",
            f"{c.cum_flops / 1e9:.3f}",
            _mib(c.cum_param_bytes),
        )
    return table


def profile_summary(profile: MeasuredProfile) -> RenderableType:
    """Device, model and per-batch totals of a profile."""
    d, m = profile.device, profile.model
    head = Text.assemble(
        ("Profile ", "bold"),
        f"{m.name} [{_shape(m.input_shape)}] on {d.name}: {d.cpu_model}, {d.cores} cores",
        f", {d.accelerator}" if d.accelerator else "",
        f", emulated x{d.emulated_slowdown:g} slower" if d.emulated_slowdown > 1 else "",
        f"; {profile.num_cuts} segments, traced by {m.tracing}",
    )
    table = Table(title_justify="left")
    for col in ("batch", "median ms", "p95 ms (sum)", "peak act MiB", "energy mJ"):
        table.add_column(col, justify="right")
    for b in profile.batch_sizes:
        meas = [s.at(b) for s in profile.segments]
        energy = [x.energy_mj for x in meas]
        table.add_row(
            str(b),
            f"{sum(x.median_ms for x in meas):.2f}",
            f"{sum(x.p95_ms for x in meas):.2f}",
            _mib(max(x.peak_memory_bytes for x in meas)),
            "n/a" if any(e is None for e in energy) else f"{sum(e or 0.0 for e in energy):.1f}",
        )
    return Group(head, table)


def plan_view(plan: Plan) -> RenderableType:
    """The plan as a person reads it: split, exit paths, parts, cost, notes."""
    r, m = plan.request, plan.model
    link = r.link
    lines: list[RenderableType] = [
        Text.assemble(
            ("Plan ", "bold"),
            (plan.hash, "bold cyan"),
            f"  {m.name} [{_shape(m.input_shape)}]  strategy={r.strategy} "
            f"placement={r.placement} batch={r.batch_size}",
        )
    ]
    if plan.split == 0:
        where = "cloud-only: the edge ships the raw input"
    elif plan.split >= plan.final_cut:
        where = "edge-only: nothing is offloaded"
    else:
        where = f"after cut {plan.split} ({plan.split_name})"
    lines.append(
        Text(
            f"Split {where}; ships {plan.transfer_bytes:,} B in {plan.transfer_ms:.2f} ms "
            f"over {link.bandwidth_mbps:g} Mbps / {link.rtt_ms:g} ms RTT"
        )
    )
    paths = Table(title="Exit paths (predicted latency when a request leaves there)")
    for col, just in (
        ("path", "left"),
        ("part", "left"),
        ("cut", "right"),
        ("name", "left"),
        ("shape", "left"),
        ("position", "right"),
        ("latency ms", "right"),
    ):
        paths.add_column(col, justify=just)  # type: ignore[arg-type]
    for i, e in enumerate(plan.exits, start=1):
        paths.add_row(
            f"exit {i}",
            e.part,
            str(e.cut_index),
            e.name,
            _shape(e.shape),
            f"{e.position:.2f}",
            f"{e.latency_ms:.2f}",
        )
    final_part = "edge" if plan.split >= plan.final_cut else "cloud"
    paths.add_row(
        "final",
        final_part,
        str(plan.final_cut),
        "(classifier)" if plan.final_cut == m.num_cuts else "(truncated here)",
        "",
        "1.00",
        f"{plan.final_latency_ms:.2f}",
        style="bold",
    )
    lines.append(paths)
    parts = Table(title="Parts")
    for col in (
        "part",
        "device",
        "segments",
        "GFLOPs",
        "compute ms",
        "params MiB",
        "peak act MiB",
        "memory MiB",
        "energy mJ",
    ):
        parts.add_column(col, justify="left" if col in ("part", "device") else "right")
    for name, p in (("edge", plan.edge), ("cloud", plan.cloud)):
        parts.add_row(
            name,
            p.device,
            "-" if p.empty else f"{p.first_segment}..{p.last_segment}",
            f"{p.flops / 1e9:.3f}",
            f"{p.compute_ms:.2f}",
            _mib(p.param_bytes),
            _mib(p.peak_activation_bytes),
            _mib(p.memory_bytes),
            "n/a" if p.energy_mj is None else f"{p.energy_mj:.1f}",
        )
    lines.append(parts)
    lines.append(
        Text(
            f"Cloud cost: ${plan.cloud_usd_per_million:,.2f} per million offloaded requests "
            f"({r.cost_model.name})"
        )
    )
    if plan.estimated_accuracy is not None:
        lines.append(Text(f"Estimated accuracy of the chosen exit: {plan.estimated_accuracy:.3f}"))
    lines.extend(Text(f"note: {n}", style="yellow") for n in plan.notes)
    return Group(*lines)


def analysis_tables(analysis: CutAnalysis) -> list[Table]:
    """`inferedge analyze`'s terminal view: the splits at each bandwidth, then the best cuts."""
    bandwidths = sorted({r.bandwidth_mbps for r in analysis.splits})
    best = {b.bandwidth_mbps: b for b in analysis.best}
    splits = Table(
        title=f"{analysis.model}: split after each cut (edge {analysis.edge_device}, cloud "
        f"{analysis.cloud_device}, RTT {analysis.rtt_ms:g} ms)",
        title_justify="left",
    )
    for col in ("cut", "name", "edge ms", "output KiB"):
        splits.add_column(col, justify="left" if col == "name" else "right")
    for bandwidth in bandwidths:
        splits.add_column(f"{bandwidth:g} Mbps ms", justify="right")
        splits.add_column(f"{bandwidth:g} Mbps mJ", justify="right")
    cells: dict[int, list[str]] = {}
    for r in analysis.splits:
        mark = "*" if best[r.bandwidth_mbps].by_latency == r.cut else ""
        energy = "-" if r.edge_energy_mj is None else f"{r.edge_energy_mj:,.1f}"
        if best[r.bandwidth_mbps].by_energy == r.cut:
            energy += "*"
        cells.setdefault(r.cut, []).extend([f"{r.latency_ms:,.2f}{mark}", energy])
    for c in analysis.cuts:
        splits.add_row(
            str(c.cut), c.name, f"{c.edge_ms:,.2f}", f"{c.output_bytes / 1024:,.1f}", *cells[c.cut]
        )
    chosen = Table(title="Best cut (* above)", title_justify="left")
    for col in ("bandwidth", "by latency", "by edge energy"):
        chosen.add_column(col, justify="right")
    for b in analysis.best:
        energy = "- (no energy measured)" if b.by_energy is None else str(b.by_energy)
        chosen.add_row(f"{b.bandwidth_mbps:g} Mbps", str(b.by_latency), energy)
    return [splits, chosen]


def versions_table(table: list[ExplorationRow]) -> Table:
    """`inferedge versions`' view: one row per (device class, version), the front marked *."""
    view = Table(title="Versions on each device class (* on the front)", title_justify="left")
    for col in ("device", "version", "accuracy", "p50 ms", "p95 ms", "requests/s", "batch"):
        view.add_column(col, justify="left" if col in ("device", "version") else "right")
    view.add_column("mJ/request", justify="right")
    view.add_column("from")
    for device in sorted({r.device for r in table}):
        front = set(versions_front(table, device))
        for r in sorted((r for r in table if r.device == device), key=lambda r: r.latency_p50_ms):
            view.add_row(
                device,
                r.version + (" *" if r.version in front else ""),
                f"{r.accuracy:.2%}",
                f"{r.latency_p50_ms:,.2f}",
                f"{r.latency_p95_ms:,.2f}",
                f"{r.throughput:,.1f}",
                str(r.best_batch),
                "-" if r.energy_mj is None else f"{r.energy_mj:,.1f}",
                "served" if r.measured else "profile",
            )
    return view


def compare_table(rows: list[tuple[str, str, Plan | str]]) -> Table:
    """One row per (strategy, placement): a plan's key figures, or why it is infeasible."""
    table = Table(title="Strategies compared (same profiles, link and exits)", title_justify="left")
    for col in ("strategy", "placement", "split", "exits edge/cloud", "ships KiB", "final ms"):
        table.add_column(col, justify="left" if col in ("strategy", "placement") else "right")
    for col in ("fastest exit ms", "edge MiB", "cloud $/M", "hash"):
        table.add_column(col, justify="right")
    for strategy, placement, plan in rows:
        if isinstance(plan, str):
            table.add_row(strategy, placement, f"[yellow]{plan}[/yellow]", end_section=False)
            continue
        fastest = min((e.latency_ms for e in plan.exits), default=plan.final_latency_ms)
        table.add_row(
            strategy,
            placement,
            f"{plan.split} ({plan.split_name})",
            f"{len(plan.edge_exits())}/{len(plan.cloud_exits())}",
            f"{plan.transfer_bytes / 1024:,.0f}",
            f"{plan.final_latency_ms:,.1f}",
            f"{fastest:,.1f}",
            _mib(plan.edge.memory_bytes),
            f"{plan.cloud_usd_per_million:.2f}",
            plan.hash,
        )
    return table


def sweep_table(report: SweepReport, chosen: Outcome | None = None) -> Table:
    """Every threshold of a sweep, then the baselines and the oracle."""
    table = Table(
        title=f"Threshold sweep on the {report.split} split ({report.samples} samples, "
        f"{report.confidence}); exits at cuts {', '.join(map(str, report.exit_cuts[:-1]))}",
        title_justify="left",
    )
    for col in ("point", "accuracy", "exit shares", "offload", "latency ms", "p95 ms"):
        table.add_column(col, justify="left" if col in ("point", "exit shares") else "right")
    for col in ("KiB shipped", "edge mJ", "cloud $/M", "edge MiB", "cloud MiB"):
        table.add_column(col, justify="right")
    outcomes = (
        *report.rows,
        report.edge_only,
        report.cloud_only,
        report.split_no_exits,
        report.oracle,
    )
    for o in outcomes:
        table.add_row(
            o.name + (" *" if chosen == o else ""),
            f"{o.accuracy:.2%}",
            " ".join(f"{s:.0%}" for s in o.exit_shares),
            f"{o.offload_rate:.0%}",
            f"{o.latency_ms:.2f}",
            f"{o.latency_p95_ms:.2f}",
            f"{o.transfer_bytes / 1024:.1f}",
            "n/a" if o.edge_energy_mj is None else f"{o.edge_energy_mj:.1f}",
            f"{o.cloud_usd_per_million:.2f}",
            _mib(o.edge_memory_bytes),
            _mib(o.cloud_memory_bytes),
            style="bold" if chosen == o else None,
            end_section=o is report.rows[-1],
        )
    return table


def print_renderable(renderable: RenderableType) -> None:
    """Print to stdout with rich; piped output gets a width that fits the tables, not 80."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(renderable)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar; yields the `progress(done, total)` callback backends take."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield progress


def measured_table(report: MeasuredReport) -> Table:
    """The measured replay next to the prediction, one row per threshold (predicted in
    parentheses); the calibrated threshold is marked."""
    table = Table(
        title=f"Measured on the real servers: {report.pipeline}, plan {report.plan_hash} "
        f"(edge {report.edge_slowdown:g}x slower, {report.bandwidth_mbps:g} Mbps / "
        f"{report.rtt_ms:g} ms)",
        title_justify="left",
    )
    for col in ("c_thr", "samples", "accuracy (pred.)", "offload (pred.)", "mean ms (pred.)"):
        table.add_column(col, justify="right")
    for col in ("p50 ms", "p95 ms (pred.)", "client p50 ms", "KiB/req (pred.)", "degraded"):
        table.add_column(col, justify="right")
    chosen = report.calibrated()
    for r in report.rows:
        table.add_row(
            f"{r.threshold:.2f}" + (" *" if r is chosen else ""),
            str(r.samples),
            f"{r.accuracy:.2%} ({r.predicted_accuracy:.2%})",
            f"{r.offload_rate:.0%} ({r.predicted_offload_rate:.0%})",
            f"{r.latency_mean_ms:.1f} ({r.predicted_latency_ms:.1f})",
            f"{r.latency_p50_ms:.1f}",
            f"{r.latency_p95_ms:.1f} ({r.predicted_p95_ms:.1f})",
            f"{r.client_p50_ms:.1f}",
            f"{r.offload_bytes_per_request / 1024:.1f} "
            f"({r.predicted_bytes_per_request / 1024:.1f})",
            str(r.degraded),
            style="bold" if r is chosen else None,
        )
    return table
