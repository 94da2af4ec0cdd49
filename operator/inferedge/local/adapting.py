"""The adaptation phase of `inferedge run`, for a pipeline with `spec.adaptation`.

One embedded nats-server and one cloud server serve the whole phase. For each policy an edge
server of its own replays the test split over the same link trace (`local.trace_replay`):
- `static`: `--adapt off`, the configuration map's point for the declared link, kept;
- `adaptive`: `--adapt follow`, the edge's estimate through the map with hysteresis;
- `oracle`: `--adapt oracle`, the map's point for the true link of the moment;
- `edge_only`: `--pin-point K/-/-`, the whole model on the edge, no exits (when it fits);
- `cloud_only`: `--pin-point 0/-/-`, the raw input shipped to the cloud, no exits.
The baselines run through the same servers and link, so every ratio is taken in one run.

Each edge is given the trace's origin a little ahead of time (twice the cloud's start-up, the
same work), so its replay starts at t=0 of the trace; a late start is measured and reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

from inferedge.core.link_trace import LinkTrace
from inferedge.dnn.data import Dataset
from inferedge.local.interruptible import run_interruptible
from inferedge.local.processes import running
from inferedge.local.replay import percentile
from inferedge.local.runner import Prepared, thread_env
from inferedge.local.serving import MIB, broker_and_servers, server_args
from inferedge.local.trace_replay import TraceReplayed, trace_replay
from inferedge.report.adaptation import (
    AdaptationRun,
    PolicyFigures,
    RequestPoint,
    TimelinePoint,
    TraceRow,
)
from inferedge.steps.reporting import Reporter


@dataclass(frozen=True)
class Policy:
    """How one policy's edge is started: its --adapt mode and, for a baseline, its route."""

    mode: str
    pin: str | None = None


POLICIES = {
    "static": Policy("off"),
    "adaptive": Policy("follow"),
    "oracle": Policy("oracle"),
    "edge_only": Policy("off", "{final}/-/-"),
    "cloud_only": Policy("off", "0/-/-"),
}


@dataclass(frozen=True)
class AdaptSettings:
    """The trace, how long it runs, and how the servers run."""

    trace: LinkTrace
    duration_s: float
    threads: int = 1
    max_payload: int = 8 * MIB
    start_timeout_s: float = 180.0
    policies: tuple[str, ...] = tuple(POLICIES)


def summarise(replayed: TraceReplayed, mode: str, deadline_ms: float | None) -> PolicyFigures:
    """One policy's figures from its replay."""
    answers = replayed.answers
    served = [a.served for a in answers if a.served is not None]
    latencies = [a.client_ms for a in answers if a.served is not None]
    missed = None
    if deadline_ms is not None and answers:
        late = sum(1 for a in answers if a.served is None or a.client_ms > deadline_ms)
        missed = late / len(answers)
    switches = replayed.timeline[-1].report.switches if replayed.timeline else 0
    return PolicyFigures(
        mode=mode,
        requests=len(answers),
        failed=len(answers) - len(served),
        deadline_miss_rate=missed,
        mean_ms=sum(latencies) / len(latencies) if latencies else 0.0,
        p95_ms=percentile(latencies, 95),
        accuracy=sum(s.prediction == s.label for s in served) / len(served) if served else 0.0,
        bytes_per_request=replayed.offload_bytes / len(answers) if answers else 0.0,
        switches=switches,
        degraded=sum(s.degraded for s in served),
        late_start_s=replayed.late_start_s,
    )


def timeline(replayed: TraceReplayed) -> tuple[TimelinePoint, ...]:
    """The adapter's readings as the report plots them."""
    return tuple(
        TimelinePoint(
            t_s=o.t_s,
            bandwidth_mbps=o.report.latest.bandwidth_mbps,
            rtt_ms=o.report.latest.rtt_ms,
            split=o.report.point.split,
            threshold=o.report.point.threshold,
        )
        for o in replayed.timeline
    )


def request_points(replayed: TraceReplayed) -> tuple[RequestPoint, ...]:
    """Each request as the report plots it."""
    return tuple(
        RequestPoint(
            t_s=a.t_s,
            latency_ms=a.client_ms,
            correct=a.served is not None and a.served.prediction == a.served.label,
            failed=a.served is None,
        )
        for a in replayed.answers
    )


def adapt_and_measure(
    prepared: Prepared, test: Dataset, reporter: Reporter, settings: AdaptSettings
) -> AdaptationRun:
    """Replay `test` over the trace under every policy; the run's adaptation report."""
    adaptation = prepared.pipeline.spec.adaptation
    if adaptation is None or prepared.manifest.space is None:
        raise ValueError("the adaptation phase needs a pipeline with spec.adaptation")
    out = prepared.out / "adaptation"
    out.mkdir(parents=True, exist_ok=True)
    trace_file = out / "trace.csv"
    trace_file.write_text(settings.trace.to_csv(), encoding="utf-8")
    meta = prepared.pipeline.metadata
    cache = prepared.out / "cache"
    switching = [
        "--switch-confirmations", str(adaptation.switching.confirmations),
        "--switch-min-dwell-s", repr(adaptation.switching.min_dwell_s),
    ]  # fmt: skip
    k, deepest = prepared.plan.final_cut, prepared.manifest.space.max_split
    figures: dict[str, PolicyFigures] = {}
    replays: dict[str, TraceReplayed] = {}
    began = time.monotonic()
    with broker_and_servers(
        meta.namespace,
        meta.name,
        {"cloud": server_args(prepared, "cloud", cache)},
        out,
        env=thread_env(settings.threads),
        max_payload=settings.max_payload,
        start_timeout_s=settings.start_timeout_s,
    ) as bus:
        lead_s = 2.0 * (time.monotonic() - began) + 2.0
        reporter.info(f"adaptation: trace {settings.trace.name}, {settings.duration_s:g} s "
                      f"per policy, EMULATED link")  # fmt: skip
        for name in settings.policies:
            policy = POLICIES[name]
            mode = policy.mode
            pin = [] if policy.pin is None else ["--pin-point", policy.pin.format(final=k)]
            if name == "edge_only" and deepest < k:
                reporter.info(f"edge_only: not run, the whole model does not fit the edge "
                              f"(its deepest split is cut {deepest})")  # fmt: skip
                continue
            origin = time.time() + lead_s
            args = [
                *server_args(prepared, "edge", cache, trace=(trace_file, origin)),
                "--adapt", mode, *pin, *switching,
            ]  # fmt: skip
            edge_server = bus.server("edge", args, out / f"edge-{name}.log")
            with (
                running([edge_server]) as [edge],
                reporter.progress(f"{name} ({mode}) over the trace") as bar,
            ):
                replayed = run_interruptible(
                    partial(
                        trace_replay, edge.url, meta.name, test, origin_unix=origin,
                        duration_s=settings.duration_s, progress=bar,
                    )
                )  # fmt: skip
            replays[name] = replayed
            figures[name] = summarise(replayed, mode, adaptation.deadline_ms)
            reporter.info(
                f"{name}: {figures[name].requests} requests, {figures[name].failed} failed, "
                f"mean {figures[name].mean_ms:.1f} ms, {figures[name].switches} switches"
            )
    return AdaptationRun(
        pipeline=meta.name,
        plan_hash=prepared.plan.hash,
        objective=adaptation.objective,
        deadline_ms=adaptation.deadline_ms,
        duration_s=settings.duration_s,
        trace_name=settings.trace.name,
        trace=tuple(
            TraceRow(t_s=t, bandwidth_mbps=link.bandwidth_mbps, rtt_ms=link.rtt_ms)
            for t, link in zip(settings.trace.times_s, settings.trace.links, strict=True)
        ),
        switches=figures["adaptive"].switches if "adaptive" in figures else 0,
        policies=figures,
        timelines={name: timeline(r) for name, r in replays.items()},
        requests={name: request_points(r) for name, r in replays.items()},
    )
