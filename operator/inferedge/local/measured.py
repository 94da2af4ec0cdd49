"""The measured report of `inferedge run`: what the servers did, next to what was predicted.

Predictions come from the plan (latency of each exit) and the offline evaluation of the same
test split (accuracy, offload rate, expected latency per threshold). Measurements come from
replaying that split through the real edge and cloud processes. The comparison is plain
arithmetic, kept apart from the processes so it is tested on its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from inferedge.core.plan import Plan
from inferedge.core.sweep import Outcome
from inferedge.local.replay import Replayed, percentile

TOLERANCE = 0.25
"""How far measured mean latency may stray from the prediction before the report explains."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExitLatency(_Frozen):
    """Requests answered at one exit: how many, and their latency measured against planned."""

    exit_index: int
    cut_index: int
    location: str
    requests: int
    measured_ms: float
    predicted_ms: float


class MeasuredRow(_Frozen):
    """One threshold's replay next to the offline prediction for it."""

    threshold: float
    samples: int
    accuracy: float
    predicted_accuracy: float
    offload_rate: float
    predicted_offload_rate: float
    latency_mean_ms: float = Field(description="Server-side total per request, mean.")
    latency_p50_ms: float
    latency_p95_ms: float
    client_p50_ms: float = Field(description="Round trip seen by the HTTP client, median.")
    client_p95_ms: float
    predicted_latency_ms: float
    predicted_p95_ms: float
    offload_bytes_per_request: float
    predicted_bytes_per_request: float
    degraded: int
    exits: tuple[ExitLatency, ...]

    @property
    def latency_ratio(self) -> float:
        """Measured mean latency over predicted (1.0 is a perfect prediction)."""
        return self.latency_mean_ms / self.predicted_latency_ms if self.predicted_latency_ms else 0


class MeasuredReport(_Frozen):
    """Every replayed threshold, and whether the calibrated one met the planner's prediction."""

    plan_hash: str
    pipeline: str
    calibrated_threshold: float
    edge_slowdown: float
    cloud_slowdown: float
    bandwidth_mbps: float
    rtt_ms: float
    rows: tuple[MeasuredRow, ...]
    verdict: str

    def calibrated(self) -> MeasuredRow:
        """The row of the calibrated threshold (the one the servers serve by default)."""
        return min(self.rows, key=lambda r: abs(r.threshold - self.calibrated_threshold))


def _exit_cuts(plan: Plan) -> list[tuple[int, str, float]]:
    """(cut index, part, predicted latency) of every exit in path order, then the final."""
    ordered = sorted(plan.exits, key=lambda e: e.cut_index)
    final_part = "edge" if plan.split >= plan.final_cut else "cloud"
    return [(e.cut_index, e.part, e.latency_ms) for e in ordered] + [
        (plan.final_cut, final_part, plan.final_latency_ms)
    ]


def measured_row(
    plan: Plan, threshold: float, replayed: Replayed, predicted: Outcome
) -> MeasuredRow:
    """Compare one replay with the offline outcome at the same threshold."""
    served = replayed.served
    n = len(served)
    server = [s.server_ms for s in served]
    client = [s.client_ms for s in served]
    exits = []
    for index, (cut, part, planned) in enumerate(_exit_cuts(plan)):
        here = [s.server_ms for s in served if s.exit_index == index]
        if here:
            exits.append(
                ExitLatency(
                    exit_index=index,
                    cut_index=cut,
                    location=part,
                    requests=len(here),
                    measured_ms=sum(here) / len(here),
                    predicted_ms=planned,
                )
            )
    return MeasuredRow(
        threshold=threshold,
        samples=n,
        accuracy=sum(s.prediction == s.label for s in served) / n if n else 0.0,
        predicted_accuracy=predicted.accuracy,
        offload_rate=sum(s.location == "cloud" for s in served) / n if n else 0.0,
        predicted_offload_rate=predicted.offload_rate,
        latency_mean_ms=sum(server) / n if n else 0.0,
        latency_p50_ms=percentile(server, 50),
        latency_p95_ms=percentile(server, 95),
        client_p50_ms=percentile(client, 50),
        client_p95_ms=percentile(client, 95),
        predicted_latency_ms=predicted.latency_ms,
        predicted_p95_ms=predicted.latency_p95_ms,
        offload_bytes_per_request=replayed.offload_bytes / n if n else 0.0,
        predicted_bytes_per_request=predicted.transfer_bytes,
        degraded=sum(s.degraded for s in served),
        exits=tuple(exits),
    )


def verdict(row: MeasuredRow, tolerance: float = TOLERANCE) -> str:
    """One paragraph: whether the measured mean latency is within `tolerance` of the
    prediction, and if not, where the difference comes from (per exit)."""
    ratio = row.latency_ratio
    head = (
        f"At c_thr {row.threshold:.2f} the measured mean latency is {row.latency_mean_ms:.1f} ms "
        f"against {row.predicted_latency_ms:.1f} ms predicted (ratio {ratio:.2f})"
    )
    if abs(ratio - 1.0) <= tolerance:
        return f"{head}: within {tolerance:.0%} of the planner's prediction."
    gaps = sorted(
        ((e.requests * (e.measured_ms - e.predicted_ms) / row.samples, e) for e in row.exits),
        key=lambda pair: -abs(pair[0]),
    )
    parts = [
        f"exit {e.exit_index} ({e.location}, cut {e.cut_index}: {e.measured_ms:.1f} vs "
        f"{e.predicted_ms:.1f} ms, {e.requests} requests) adds {share:+.1f} ms"
        for share, e in gaps[:2]
    ]
    cause = (
        "offloaded requests also pay HTTP, NATS and batching overheads the planner does not model"
        if gaps and gaps[0][1].location == "cloud"
        else "edge requests pay per-request Python dispatch and exit tests that profiling, "
        "which times bare segments, does not see"
    )
    accuracy_gap = row.accuracy - row.predicted_accuracy
    mix = (
        f"; the exit mix matched the prediction (offload {row.offload_rate:.0%} vs "
        f"{row.predicted_offload_rate:.0%}, accuracy {accuracy_gap:+.1%})"
    )
    return f"{head}: outside {tolerance:.0%}. Per request, {'; '.join(parts)}; {cause}{mix}."


def measured_markdown(report: MeasuredReport) -> str:
    """The measured report as markdown tables."""
    lines = [
        f"# Measured run of {report.pipeline} (plan {report.plan_hash})",
        "",
        f"Edge emulated {report.edge_slowdown:g}x slower, cloud {report.cloud_slowdown:g}x, link "
        f"{report.bandwidth_mbps:g} Mbps / {report.rtt_ms:g} ms RTT. Latency is the servers' "
        "own total per request; the client's round trip adds HTTP and JSON.",
        "",
        "| c_thr | accuracy (pred.) | offload (pred.) | mean ms (pred.) | p50 ms | p95 ms "
        "(pred.) | client p50 ms | bytes/req (pred.) | degraded |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        mark = " *" if r is report.calibrated() else ""
        lines.append(
            f"| {r.threshold:.2f}{mark} | {r.accuracy:.2%} ({r.predicted_accuracy:.2%}) | "
            f"{r.offload_rate:.0%} ({r.predicted_offload_rate:.0%}) | {r.latency_mean_ms:.1f} "
            f"({r.predicted_latency_ms:.1f}) | {r.latency_p50_ms:.1f} | {r.latency_p95_ms:.1f} "
            f"({r.predicted_p95_ms:.1f}) | {r.client_p50_ms:.1f} | "
            f"{r.offload_bytes_per_request:,.0f} ({r.predicted_bytes_per_request:,.0f}) | "
            f"{r.degraded} |"
        )
    chosen = report.calibrated()
    lines += [
        "",
        "\\* the calibrated threshold.",
        "",
        f"## Per exit at c_thr {chosen.threshold:.2f}",
        "",
        "| exit | where | cut | requests | measured ms | planned ms |",
        "|---|---|---|---|---|---|",
        *(
            f"| {e.exit_index} | {e.location} | {e.cut_index} | {e.requests} | "
            f"{e.measured_ms:.1f} | {e.predicted_ms:.1f} |"
            for e in chosen.exits
        ),
        "",
        report.verdict,
        "",
    ]
    return "\n".join(lines)


def write_measured(report: MeasuredReport, report_dir: Path) -> list[Path]:
    """measured.json, measured.md and measured.png under `report_dir`; returns the paths."""
    report_dir.mkdir(parents=True, exist_ok=True)
    data = report_dir / "measured.json"
    data.write_text(json.dumps(report.model_dump(mode="json"), indent=2) + "\n")
    markdown = report_dir / "measured.md"
    markdown.write_text(measured_markdown(report))
    return [data, markdown, plot_measured(report.rows, report_dir / "measured.png")]


def plot_measured(rows: Sequence[MeasuredRow], path: Path) -> Path:
    """Accuracy and latency against c_thr, measured (solid) and predicted (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = [r.threshold for r in rows]
    fig, (acc, lat) = plt.subplots(1, 2, figsize=(10, 4))
    acc.plot(thresholds, [r.accuracy * 100 for r in rows], "o-", label="measured")
    acc.plot(thresholds, [r.predicted_accuracy * 100 for r in rows], "s--", label="predicted")
    acc.set(xlabel="c_thr", ylabel="accuracy (%)", title="Accuracy")
    lat.plot(thresholds, [r.latency_mean_ms for r in rows], "o-", label="measured mean")
    lat.plot(thresholds, [r.latency_p95_ms for r in rows], "^-", label="measured p95")
    lat.plot(thresholds, [r.predicted_latency_ms for r in rows], "s--", label="predicted mean")
    lat.plot(thresholds, [r.predicted_p95_ms for r in rows], "v--", label="predicted p95")
    lat.set(xlabel="c_thr", ylabel="latency (ms)", title="Latency per request")
    for ax in (acc, lat):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
