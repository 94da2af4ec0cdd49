"""A local site's report: the exploration table, the decision, and what serving it measured.

Every figure from serving is measured on emulated boards (compute slowdowns on this machine);
the report says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inferedge.api.site import SiteStatus
from inferedge.core.distribution import Distribution
from inferedge.core.exploration import ExplorationRow
from inferedge.report.versions import plot_versions, versions_markdown


def distribution_markdown(distribution: Distribution) -> str:
    """The decision: each pool's version, share and rate, and whether the target is met."""
    lines = [
        f"Target {distribution.target:g} requests/s: {distribution.reason}; planned "
        f"{distribution.rate:.1f} requests/s at {distribution.accuracy:.2%} expected accuracy.",
        "",
        "| pool | version | share | requests/s | capacity/s | accuracy |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {a.pool} | {a.version} | {a.share:.3f} | {a.rate:.1f} | {a.capacity:.1f} | "
        f"{a.accuracy:.2%} |"
        for a in distribution.assignments
    ]
    return "\n".join(lines) + "\n"


def status_markdown(status: SiteStatus) -> str:
    """The dispatcher's account: each pool, then every decision of the shares."""
    lines = [
        "| pool | version | share | table/s | measured/s | replicas | answered |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for p in status.pools:
        measured = "-" if p.measured_throughput is None else f"{p.measured_throughput:.1f}"
        lines.append(
            f"| {p.name} | {p.version} | {p.share:.3f} | {p.table_throughput:.1f} | "
            f"{measured} | {p.replicas} | {p.answered} |"
        )
    lines += ["", "| at s | cause | shares | met |", "|---:|---|---|---|"]
    for d in status.decisions:
        shares = ", ".join(f"{k} {v:.2f}" for k, v in sorted(d.shares.items()))
        lines.append(f"| {d.at_s:.1f} | {d.cause} | {shares} | {'yes' if d.met else 'no'} |")
    return "\n".join(lines) + "\n"


def write_site(
    table: Sequence[ExplorationRow],
    distribution: Distribution,
    served: dict[str, Any] | None,
    status: SiteStatus | None,
    report_dir: Path,
) -> list[Path]:
    """site.md, site.json and versions.png under `report_dir`; returns the paths."""
    report_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        "# The site (EMULATED boards: compute slowdowns on one machine)\n",
        versions_markdown(table),
        "## Distribution\n",
        distribution_markdown(distribution),
    ]
    if served is not None and status is not None:
        parts += [
            "## Served (measured, emulated)\n",
            f"{served['answered']} of {served['sent']} requests answered; in the steady window "
            f"{served['throughput']:.1f} answers/s for {served['offered']:.1f} requests/s sent "
            f"(target {served['rate']:g}/s), accuracy "
            f"{served['accuracy']:.2%}, refused {served['refused']}, lost {served['lost']}.\n",
            status_markdown(status),
        ]
    markdown = report_dir / "site.md"
    markdown.write_text("\n".join(parts))
    data = report_dir / "site.json"
    payload = {
        "emulated": True,
        "table": [vars(r) for r in table],
        "distribution": {
            "target": distribution.target,
            "met": distribution.met,
            "reason": distribution.reason,
            "rate": distribution.rate,
            "accuracy": distribution.accuracy,
            "assignments": [vars(a) for a in distribution.assignments],
        },
        "served": served,
        "status": status.model_dump(mode="json") if status is not None else None,
    }
    data.write_text(json.dumps(payload, indent=2) + "\n")
    return [markdown, data, plot_versions(table, report_dir)]
