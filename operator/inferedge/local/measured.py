"""The measured report of `inferedge run`: what the servers did, next to what was predicted.

Predictions come from the plan (latency of each exit) and the offline evaluation of the same
test split (accuracy, offload rate, expected latency per threshold). Measurements come from
replaying that split through the real edge and cloud processes. The comparison is plain
arithmetic, kept apart from the processes so it is tested on its own.

Latency is also split into the components the servers time for every answer: the edge's model
calls, the edge's own serving work around them (decode, exit tests, copies), the offload (link,
NATS, (de)serialisation) and the cloud (batch queue and compute), each next to what the plan
predicted for it. When the total misses, the verdict names the components that miss, with
their measured figures, rather than guessing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from inferedge.core.plan import Plan
from inferedge.core.sweep import Outcome, SweepReport
from inferedge.local.baselines import BaselineRow, baselines_markdown
from inferedge.local.replay import Replayed, Served, percentile

TOLERANCE = 0.25
"""How far measured mean latency may stray from the prediction before the report explains."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


COMPONENTS = ("edge compute", "edge serving", "offload", "cloud")
"""The latency components of a request, in the order it meets them."""


class Component(_Frozen):
    """One component of the latency per request: measured mean against predicted."""

    name: str
    measured_ms: float
    predicted_ms: float


class ExitLatency(_Frozen):
    """Requests answered at one exit: how many, and their latency measured against planned."""

    exit_index: int
    cut_index: int
    location: str
    requests: int
    measured_ms: float
    predicted_ms: float
    components: tuple[Component, ...] = ()


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
    components: tuple[Component, ...] = Field(
        default=(), description="Per-request means over every answer, in `COMPONENTS` order."
    )

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
    baselines: tuple[BaselineRow, ...] = Field(
        default=(), description="Edge-only and cloud-only, replayed in the same run."
    )

    def calibrated(self) -> MeasuredRow:
        """The row of the calibrated threshold (the one the servers serve by default)."""
        return min(self.rows, key=lambda r: abs(r.threshold - self.calibrated_threshold))


def _exit_paths(plan: Plan, report: SweepReport | None) -> list[tuple[int, str, float, float]]:
    """(cut index, part, predicted latency, predicted cloud compute) of every exit in path
    order, then the final: the evaluation's paths (heads included) where it gives them, else
    the plan's (heads left out, cloud time what the edge and link leave)."""
    ordered = sorted(plan.exits, key=lambda e: e.cut_index)
    final_part = "edge" if plan.split >= plan.final_cut else "cloud"
    cuts = [(e.cut_index, e.part, e.latency_ms) for e in ordered] + [
        (plan.final_cut, final_part, plan.final_latency_ms)
    ]
    if report is not None and len(report.exit_latency_ms) == len(cuts):
        return [
            (cut, part, latency, cloud)
            for (cut, part, _), latency, cloud in zip(
                cuts, report.exit_latency_ms, report.exit_cloud_ms, strict=True
            )
        ]
    link = plan.transfer_ms
    return [
        (cut, part, ms, max(ms - plan.edge.compute_ms - link, 0.0) if part == "cloud" else 0.0)
        for cut, part, ms in cuts
    ]


def _predicted_components(
    plan: Plan, part: str, latency_ms: float, cloud_ms: float
) -> tuple[float, ...]:
    """What is predicted for each of `COMPONENTS` on a path that leaves at an exit of `part`
    with `latency_ms`, `cloud_ms` of it in the cloud: the edge walk alone, or the edge part,
    the link and the cloud. Serving work is not in the planner's model, so it predicts 0."""
    if part == "edge":
        return (latency_ms, 0.0, 0.0, 0.0)
    link = plan.transfer_ms
    return (max(latency_ms - link - cloud_ms, 0.0), 0.0, link, cloud_ms)


def _measured_components(served: Sequence[Served]) -> tuple[float, ...]:
    """Mean of each of `COMPONENTS` over `served`, from the servers' own timings."""
    n = len(served)

    def mean(values: Sequence[float]) -> float:
        return sum(values) / n if n else 0.0

    compute = [s.timings.get("edge_compute_ms", 0.0) for s in served]
    walk = [s.timings.get("edge_ms", 0.0) for s in served]
    return (
        mean(compute),
        mean([w - c for w, c in zip(walk, compute, strict=True)]),
        mean([s.timings.get("transfer_ms", s.timings.get("offload_ms", 0.0)) for s in served]),
        mean([s.timings.get("cloud_ms", 0.0) for s in served]),
    )


def _components(served: Sequence[Served], predicted: Sequence[float]) -> tuple[Component, ...]:
    """The components of `served`; none when a server did not time them (an older runtime)."""
    if not served or any("edge_compute_ms" not in s.timings for s in served):
        return ()
    measured = _measured_components(served)
    return tuple(
        Component(name=name, measured_ms=m, predicted_ms=p)
        for name, m, p in zip(COMPONENTS, measured, predicted, strict=True)
    )


def measured_row(
    plan: Plan,
    threshold: float,
    replayed: Replayed,
    predicted: Outcome,
    report: SweepReport | None = None,
) -> MeasuredRow:
    """Compare one replay with the offline outcome at the same threshold; `report`, the
    evaluation of the same split, gives each exit's predicted path."""
    served = replayed.served
    n = len(served)
    server = [s.server_ms for s in served]
    client = [s.client_ms for s in served]
    exits = []
    weighted = [0.0] * len(COMPONENTS)
    for index, (cut, part, planned, cloud) in enumerate(_exit_paths(plan, report)):
        here = [s for s in served if s.exit_index == index]
        if here:
            predicted_parts = _predicted_components(plan, part, planned, cloud)
            weighted = [
                w + p * len(here) / n for w, p in zip(weighted, predicted_parts, strict=True)
            ]
            exits.append(
                ExitLatency(
                    exit_index=index,
                    cut_index=cut,
                    location=part,
                    requests=len(here),
                    measured_ms=sum(s.server_ms for s in here) / len(here),
                    predicted_ms=planned,
                    components=_components(here, predicted_parts),
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
        components=_components(served, weighted),
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
    missed = sorted(
        (c for c in row.components if abs(c.measured_ms - c.predicted_ms) > 0.05),
        key=lambda c: -abs(c.measured_ms - c.predicted_ms),
    )
    causes = [
        f"{c.name} {c.measured_ms:.1f} ms per request against {c.predicted_ms:.1f} predicted"
        + (f" ({_WHY[c.name]})" if c.name in _WHY else "")
        for c in missed[:2]
    ]
    where = f"; by component: {'; '.join(causes)}" if causes else ""
    accuracy_gap = row.accuracy - row.predicted_accuracy
    mix_matched = abs(row.offload_rate - row.predicted_offload_rate) <= 0.02
    mix = (
        f". The exit mix {'matched' if mix_matched else 'differed from'} the prediction "
        f"(offload {row.offload_rate:.0%} vs {row.predicted_offload_rate:.0%}, accuracy "
        f"{accuracy_gap:+.1%})"
    )
    return f"{head}: outside {tolerance:.0%}. Per request, {'; '.join(parts)}{where}{mix}."


_WHY = {
    "edge compute": "the profile's served pass times each model call as served, but for a "
    "request that finds the device idle for 10 ms; here requests follow each other as the "
    "replay sends them and share the machine with the cloud, the broker and the client, and "
    "the slowdown multiplies every difference",
    "edge serving": "decoding, exit tests and copies between the model calls, which the "
    "planner does not model",
    "offload": "the emulated link plus NATS, chunking and (de)serialisation on this machine",
    "cloud": "the batcher's queue and dispatch on top of the cloud's compute",
}


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
        "Each component: measured mean (planned). Edge serving is the edge's work around "
        "the model calls, which the planner does not model.",
        "",
        "| exit | where | cut | requests | measured ms | planned ms | "
        + " | ".join(COMPONENTS)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(COMPONENTS),
        *(
            f"| {e.exit_index} | {e.location} | {e.cut_index} | {e.requests} | "
            f"{e.measured_ms:.1f} | {e.predicted_ms:.1f} | "
            + " | ".join(f"{c.measured_ms:.1f} ({c.predicted_ms:.1f})" for c in e.components)
            + " |"
            for e in chosen.exits
        ),
        "",
        report.verdict,
        "",
        *baselines_markdown(
            report.baselines, chosen.threshold, chosen.latency_mean_ms, chosen.accuracy
        ),
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
