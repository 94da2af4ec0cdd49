"""The tuning report of `inferedge run`: the edge's windows against the arrival schedule, as a
table per step (markdown) and a timeline (PNG)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from inferedge.api.tuning import TuningReport, WindowReport


class StepSummary(BaseModel):
    """The windows that ended during one step of the schedule."""

    model_config = ConfigDict(frozen=True)

    pattern: str
    start_s: float = Field(description="Seconds from the replay's start.")
    seconds: float
    windows: int
    arrival_rate_hz: float | None
    served_batch: float | None = Field(description="Mean samples per batch actually run.")
    batch: int | None = Field(description="The batch size the tuner ended the step at.")
    cpu_khz: float | None
    gpu_khz: float | None
    latency_ms: float | None
    energy_j_per_request: float | None
    cost: float | None = Field(description="The last window's cost.")


def summarise(
    report: TuningReport, steps: Sequence[tuple[str, float]], replay_start_unix: float
) -> list[StepSummary]:
    """One summary per (pattern, seconds) step, from the windows that ended in it."""
    summaries = []
    begin = replay_start_unix
    for pattern, seconds in steps:
        end = begin + seconds
        mine = [w for w in report.windows if begin <= report.started_unix + w.finished_s < end]
        last = mine[-1] if mine else None
        summaries.append(
            StepSummary(
                pattern=pattern,
                start_s=begin - replay_start_unix,
                seconds=seconds,
                windows=len(mine),
                arrival_rate_hz=_mean(mine, lambda w: w.arrival_rate_hz),
                served_batch=_mean(mine, lambda w: w.served_batch),
                batch=last.batch if last else None,
                cpu_khz=last.cpu_khz if last else None,
                gpu_khz=last.gpu_khz if last else None,
                latency_ms=_mean(mine, lambda w: w.latency_ms),
                energy_j_per_request=_mean(mine, lambda w: w.energy_j_per_request),
                cost=last.cost if last else None,
            )
        )
        begin = end
    return summaries


def _mean(windows: Sequence[WindowReport], value: Callable[[WindowReport], float]) -> float | None:
    return sum(value(w) for w in windows) / len(windows) if windows else None


def tuning_markdown(report: TuningReport, summaries: Sequence[StepSummary]) -> str:
    """The report as markdown: what was tuned, then one row per step of the schedule."""
    label = "EMULATED device (modelled clocks and power)" if report.emulated else "measured"
    knobs = "batch size and clocks" if report.clocks else "batch size"
    lines = [
        "# Energy tuning",
        "",
        f"Optimiser `{report.optimiser}` tuning the {knobs}; energy and clocks: {label}.",
        "",
        "| step | arrivals | windows | served batch | batch knob | CPU MHz | GPU MHz "
        "| latency ms | mJ/request | cost |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, s in enumerate(summaries):
        lines.append(
            f"| {i + 1} ({s.start_s:.0f}-{s.start_s + s.seconds:.0f} s) | {s.pattern} "
            f"| {s.windows} | {_f(s.served_batch, '.2f')} | {_f(s.batch, 'd')} "
            f"| {_f(_times(s.cpu_khz, 1e-3), '.0f')} | {_f(_times(s.gpu_khz, 1e-3), '.0f')} "
            f"| {_f(s.latency_ms, '.1f')} | {_f(_times(s.energy_j_per_request, 1e3), '.3f')} "
            f"| {_f(s.cost, '.3f')} |"
        )
    lines += [
        "",
        "The served batch is what the edge ran: requests that queue while it computes run "
        "together, up to the batch knob. Cost is ½(E/E0 + L/L0) against the first window, at "
        "the maximum settings.",
        "",
    ]
    return "\n".join(lines)


def _times(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _f(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def plot_tuning(
    report: TuningReport, steps: Sequence[tuple[str, float]], replay_start_unix: float, path: Path
) -> Path:
    """Arrival rate, batch (knob and served), clocks and cost per window against time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    at = [report.started_unix + w.finished_s - replay_start_unix for w in report.windows]
    fig, (rate, batch, clocks, cost) = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    rate.plot(at, [w.arrival_rate_hz for w in report.windows], "o-", ms=3)
    rate.set_ylabel("arrivals / s")
    batch.step(at, [w.batch for w in report.windows], where="post", label="batch knob")
    batch.plot(at, [w.served_batch for w in report.windows], "o", ms=3, label="served batch")
    batch.set_ylabel("samples")
    batch.legend(fontsize=8)
    clocks.step(at, [w.cpu_khz / 1000 for w in report.windows], where="post", label="CPU")
    clocks.step(at, [w.gpu_khz / 1000 for w in report.windows], where="post", label="GPU")
    clocks.set_ylabel("MHz")
    clocks.legend(fontsize=8)
    cost.plot(at, [w.cost for w in report.windows], "o-", ms=3)
    cost.set_ylabel("cost")
    cost.set_xlabel("seconds from the replay's start")
    begin = 0.0
    for pattern, seconds in steps:
        for ax in (rate, batch, clocks, cost):
            ax.axvline(begin, color="grey", lw=0.6, ls=":")
        rate.annotate(pattern, (begin, 0), xytext=(3, 3), textcoords="offset points", fontsize=8)
        begin += seconds
    emulated = " (EMULATED device)" if report.emulated else ""
    fig.suptitle(f"Energy tuning with {report.optimiser}{emulated}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
