"""The adaptation report of `inferedge run`: the same requests and link trace under the static
plan, the adaptive controller and the per-state oracle, and the edge-only and cloud-only
baselines, as JSON, a markdown table and a timeline.

Every figure is measured on this machine, over an EMULATED link (the trace) and EMULATED
devices (compute slowdowns): the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

POLICIES = ("static", "adaptive", "oracle")
BASELINES = ("edge_only", "cloud_only")
COLOURS = dict(
    zip(
        (*POLICIES, *BASELINES),
        ("tab:grey", "tab:blue", "tab:green", "tab:orange", "tab:purple"),
        strict=True,
    )
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyFigures(_Frozen):
    """What one policy measured over the whole trace."""

    mode: str = Field(description="The edge's --adapt mode: off, follow or oracle.")
    requests: int = Field(ge=0)
    failed: int = Field(ge=0, description="Requests that got no answer.")
    deadline_miss_rate: float | None = Field(
        description="Share of requests answered later than the deadline (failed ones count as "
        "missed); None without a deadline."
    )
    mean_ms: float
    p95_ms: float
    accuracy: float
    bytes_per_request: float
    switches: int = Field(ge=0)
    degraded: int = Field(ge=0, description="Answers the edge gave because the cloud did not.")
    late_start_s: float = Field(ge=0, description="Seconds of the trace lost to a late start.")


class TimelinePoint(_Frozen):
    """One reading of the edge's adapter."""

    t_s: float
    bandwidth_mbps: float
    rtt_ms: float
    split: int
    threshold: float


class RequestPoint(_Frozen):
    """One request: when it left, its latency, whether it was right."""

    t_s: float
    latency_ms: float
    correct: bool
    failed: bool


class TraceRow(_Frozen):
    """One point of the trace."""

    t_s: float
    bandwidth_mbps: float
    rtt_ms: float


class AdaptationRun(_Frozen):
    """`report/adaptation.json`."""

    pipeline: str
    plan_hash: str
    emulated: bool = Field(default=True, description="Devices and link are emulated.")
    objective: str
    deadline_ms: float | None
    duration_s: float
    trace_name: str
    trace: tuple[TraceRow, ...]
    switches: int = Field(description="The adaptive policy's moves.")
    policies: dict[str, PolicyFigures]
    timelines: dict[str, tuple[TimelinePoint, ...]]
    requests: dict[str, tuple[RequestPoint, ...]]


def adaptation_markdown(run: AdaptationRun) -> str:
    """The policies side by side, and the adaptive edge's ratios to the others."""
    deadline = f"{run.deadline_ms:g} ms" if run.deadline_ms is not None else "none"
    lines = [
        f"# Run-time adaptation: {run.pipeline}, plan {run.plan_hash}",
        "",
        f"EMULATED link (trace `{run.trace_name}`, {run.duration_s:g} s) and EMULATED devices. "
        f"Objective: {run.objective}; deadline {deadline}. The same requests, closed-loop, one "
        "at a time, through the same servers under each policy.",
        "",
        "| policy | requests | failed | deadline misses | mean ms | p95 ms | accuracy | bytes/req "
        "| switches |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, p in run.policies.items():
        miss = "-" if p.deadline_miss_rate is None else f"{p.deadline_miss_rate:.1%}"
        lines.append(
            f"| {name} ({p.mode}) | {p.requests} | {p.failed} | {miss} | {p.mean_ms:.1f} | "
            f"{p.p95_ms:.1f} | {p.accuracy:.2%} | {p.bytes_per_request:.0f} | {p.switches} |"
        )
    lines += ["", *_ratios(run.policies), ""]
    return "\n".join(lines)


def _ratios(policies: Mapping[str, PolicyFigures]) -> list[str]:
    if not all(name in policies for name in POLICIES):
        return []
    static, adaptive, oracle = (policies[n] for n in POLICIES)
    out = [
        f"- adaptive mean latency / oracle's: {adaptive.mean_ms / max(oracle.mean_ms, 1e-9):.2f}",
        f"- adaptive accuracy - static's: {(adaptive.accuracy - static.accuracy) * 100:+.2f} "
        "points",
    ]
    for name in ("static", *BASELINES):
        other = policies.get(name)
        if other is None:
            continue
        if other.deadline_miss_rate is not None and adaptive.deadline_miss_rate is not None:
            if other.deadline_miss_rate > 0:
                share = adaptive.deadline_miss_rate / other.deadline_miss_rate
                out.append(f"- adaptive deadline misses / {name}'s: {share:.2f}")
            else:
                out.append(f"- {name} missed no deadline")
        if name != "static":
            out.append(
                f"- adaptive mean latency / {name}'s: "
                f"{adaptive.mean_ms / max(other.mean_ms, 1e-9):.2f}; accuracy "
                f"{(adaptive.accuracy - other.accuracy) * 100:+.2f} points"
            )
    return out


def plot_adaptation(run: AdaptationRun, path: Path) -> Path:
    """The timeline: true and estimated bandwidth, the split served, and each request's
    latency against the deadline, one colour per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (link, split, latency) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    times = [r.t_s for r in run.trace] + [run.duration_s]
    link.step(
        times, [r.bandwidth_mbps for r in run.trace] + [run.trace[-1].bandwidth_mbps],
        where="post", color="black", lw=2, label="true (trace)",
    )  # fmt: skip
    for name, timeline in run.timelines.items():
        if not timeline:
            continue
        at = [p.t_s for p in timeline]
        colour = COLOURS.get(name, "tab:red")
        if name == "adaptive":
            link.plot(at, [p.bandwidth_mbps for p in timeline], ".", ms=3, color=colour,
                      label="estimated (adaptive)")  # fmt: skip
        split.step(at, [p.split for p in timeline], where="post", color=colour, label=name)
    for name, points in run.requests.items():
        _scatter(latency, points, COLOURS.get(name, "tab:red"), name)
    if run.deadline_ms is not None:
        latency.axhline(run.deadline_ms, color="red", ls="--", lw=1, label="deadline")
    link.set_yscale("log")
    link.set_ylabel("Mbps")
    link.legend(fontsize=8)
    split.set_ylabel("split (cut)")
    split.legend(fontsize=8)
    latency.set_yscale("log")
    latency.set_ylabel("latency ms")
    latency.set_xlabel("seconds into the trace")
    latency.legend(fontsize=8, markerscale=3)
    fig.suptitle(f"{run.pipeline}: {', '.join(run.policies)} over trace {run.trace_name} "
                 "(EMULATED link and devices)")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _scatter(ax: object, points: Sequence[RequestPoint], colour: str, label: str) -> None:
    ok = [p for p in points if not p.failed]
    ax.plot(  # type: ignore[attr-defined]
        [p.t_s for p in ok], [p.latency_ms for p in ok], ".", ms=2, color=colour, label=label
    )


def write_adaptation(run: AdaptationRun, report_dir: Path) -> list[Path]:
    """adaptation.json, adaptation.md and adaptation.png under `report_dir`."""
    report_dir.mkdir(parents=True, exist_ok=True)
    data = report_dir / "adaptation.json"
    data.write_text(run.model_dump_json(indent=2) + "\n", encoding="utf-8")
    markdown = report_dir / "adaptation.md"
    markdown.write_text(adaptation_markdown(run), encoding="utf-8")
    return [data, markdown, plot_adaptation(run, report_dir / "adaptation.png")]
