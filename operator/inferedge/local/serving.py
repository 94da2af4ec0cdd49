"""The serving half of `inferedge run`: real servers, a real broker, the test split replayed.

An embedded nats-server, then `inferedge serve cloud` and `inferedge serve edge` as child
processes on the artifacts `prepare` published, each emulating its DeviceProfile (compute
slowdown; the edge also the declared link). For every threshold the servers are told the new
c_thr live (a reload command, cloud first), the test split is replayed through the edge's HTTP
endpoint, and the answers are compared with what the plan and the offline evaluation predicted.

The broker authorizes, as a cluster's does: every run makes fresh random credentials for the
edge, cloud and control identities (`inferedge.transport.identities`), each server gets its
own through its environment, and the runner's reloads sign in as control. The replay and the
measurements talk HTTP to the edge, so they need no NATS identity.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from inferedge.api.convert import link_for, plan_request
from inferedge.api.tuning import KnobEmulationSpec, TuningReport
from inferedge.core.identities import Identity
from inferedge.core.planner import baseline_plan
from inferedge.core.roles import ROLES, Role
from inferedge.dnn.data import Dataset
from inferedge.local.baselines import ROUTES, BaselineRow, baseline_row
from inferedge.local.interruptible import run_interruptible
from inferedge.local.measured import MeasuredReport, MeasuredRow, measured_row, verdict
from inferedge.local.processes import ServerProcess, Started, running
from inferedge.local.replay import Replayed, replay
from inferedge.local.runner import Prepared, thread_env
from inferedge.local.tuning_replay import ArrivalStep, PacedReplay, fetch_tuning, paced_replay
from inferedge.steps.reporting import Reporter
from inferedge.transport.client import Messenger
from inferedge.transport.control import reload_pipeline
from inferedge.transport.identities import fresh_credentials, server_users
from inferedge.transport.server import EmbeddedNats
from inferedge.transport.settings import NatsSettings

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """How the servers run and how the split is replayed."""

    thresholds: tuple[float, ...]
    concurrency: int = 1
    max_payload: int = 8 * MIB
    start_timeout_s: float = 180.0
    threads: int = 1
    """Compute threads per server. Two servers and the replay share this machine, and a
    thread team woken for every small batch-1 call costs more than it computes."""
    tuning_steps: tuple[ArrivalStep, ...] = ()
    """The arrival schedule of the tuning phase, when the edge tunes its knobs."""


@dataclass(frozen=True)
class Tuned:
    """The tuning phase: what was sent on which schedule, and the edge's own report."""

    replay: PacedReplay
    steps: tuple[ArrivalStep, ...]
    started_unix: float
    report: TuningReport


@dataclass(frozen=True)
class Served:
    """What serving measured: the replay at every threshold, and the tuning phase if any."""

    measured: MeasuredReport
    tuned: Tuned | None


def server_args(
    prepared: Prepared,
    role: Role,
    cache: Path,
    *,
    tuning: bool = False,
    trace: tuple[Path, float] | None = None,
) -> list[str]:
    """The `inferedge serve <role>` flags for one server of this run (but --nats-url); with
    `tuning`, the edge tunes the emulated knobs of its DeviceProfile; with `trace` (a trace
    file and its origin, Unix seconds), the edge's link follows it instead of the declared
    link, which is then only where its estimate starts."""
    spec = prepared.pipeline.spec
    device = prepared.devices[role].spec
    args = [
        "--store", prepared.store_uri,
        "--prefix", prepared.prefix,
        "--manifest-sha256", prepared.manifest_sha256,
        "--port", "0",
        "--cache-dir", str(cache),
        "--emulate-slowdown", repr(device.emulation.slowdown),
        "--encoding", spec.inference.activation_encoding,
    ]  # fmt: skip
    if role == "edge":
        link = link_for(spec, device)
        if trace is None:
            args += [
                "--emulate-bandwidth-mbps", repr(link.bandwidth_mbps),
                "--emulate-rtt-ms", repr(link.rtt_ms),
            ]  # fmt: skip
        else:
            args += [
                "--emulate-link-trace", str(trace[0]),
                "--emulate-link-origin", repr(trace[1]),
                "--link-bandwidth-mbps", repr(link.bandwidth_mbps),
                "--link-rtt-ms", repr(link.rtt_ms),
            ]  # fmt: skip
        args += ["--offload-timeout-ms", repr(spec.inference.offload_timeout_ms)]
        if tuning and device.tuning is not None:
            # One machine has no clock agent and no power rails: the device's knobs are emulated.
            knobs = device.emulation.knobs or KnobEmulationSpec()
            args += [
                "--tuning", device.tuning.model_dump_json(by_alias=True),
                "--emulate-knobs", knobs.model_dump_json(by_alias=True),
            ]  # fmt: skip
    else:
        # A sequential replay never fills a batch: waiting for company would only add latency.
        args += ["--max-wait-ms", "0"]
        # Every step, so the run's baselines can ship it the raw input (cloud-only).
        args += ["--whole-chain"]
    return args


@dataclass(frozen=True)
class LocalBus:
    """The run's broker and servers: where they serve, and how the runner signs in."""

    url: str
    control: NatsSettings
    """The control identity: the only one allowed to publish reload commands."""
    started: dict[str, Started]
    server: Callable[[Identity, Sequence[str], Path], ServerProcess]
    """Another server of this run (its arguments, its log), signed in as its identity (a
    role's, or the dispatcher's); start it with `running`."""


@contextlib.contextmanager
def broker_and_servers(
    namespace: str,
    pipeline: str,
    args: Mapping[Role, Sequence[str]],
    logs: Path,
    *,
    env: Mapping[str, str],
    max_payload: int,
    start_timeout_s: float,
) -> Iterator[LocalBus]:
    """Start an authorizing nats-server for one pipeline, then a server for each role in `args`
    (cloud first), each signed in as its own identity; stop them all, in reverse, when the
    block ends."""
    credentials = fresh_credentials()
    users = server_users(list(credentials.values()), namespace, pipeline)
    with EmbeddedNats(max_payload=max_payload, users=users) as nats:

        def server(role: Identity, arguments: Sequence[str], log: Path) -> ServerProcess:
            return ServerProcess(
                role,
                ["--nats-url", nats.url, *arguments],
                log,
                env={**env, **credentials[role].env()},
                start_timeout_s=start_timeout_s,
            )

        servers = [
            server(role, args[role], logs / f"{role}.log")
            for role in reversed(ROLES)
            if role in args
        ]
        with running(servers) as started:
            control = credentials["control"].settings(nats.url)
            yield LocalBus(nats.url, control, {s.role: s for s in started}, server)


def serve_and_measure(
    prepared: Prepared, test: Dataset, reporter: Reporter, settings: ServeSettings
) -> Served:
    """Start the broker and both servers, replay `test` at every threshold, then (when the
    edge tunes its knobs) on the tuning schedule, and stop everything."""
    out = prepared.out
    meta = prepared.pipeline.metadata
    args = {role: server_args(prepared, role, out / "cache") for role in ROLES}
    with broker_and_servers(
        meta.namespace,
        meta.name,
        args,
        out / "logs",
        env=thread_env(settings.threads),
        max_payload=settings.max_payload,
        start_timeout_s=settings.start_timeout_s,
    ) as bus:
        reporter.info(f"nats: embedded nats-server on {bus.url}, edge/cloud/control identities")
        for s in bus.started.values():
            reporter.info(f"{s.role}: serving plan {s.plan_hash} on {s.url}")
        rows = run_interruptible(
            lambda: _measure(
                prepared,
                test,
                reporter,
                settings,
                control=bus.control,
                edge_url=bus.started["edge"].url,
            )
        )
        baselines = _baselines(prepared, test, reporter, settings, bus)
    tuned = None
    if prepared.devices["edge"].spec.tuning is not None and settings.tuning_steps:
        # Servers of their own: the replays above measured the plan at the device's own
        # clocks, and the tuner starts from a fresh edge at the maximum settings.
        args["edge"] = server_args(prepared, "edge", out / "cache", tuning=True)
        with broker_and_servers(
            meta.namespace,
            meta.name,
            args,
            out / "logs" / "tuning",
            env=thread_env(settings.threads),
            max_payload=settings.max_payload,
            start_timeout_s=settings.start_timeout_s,
        ) as bus:
            edge_url = bus.started["edge"].url
            tuned = run_interruptible(
                lambda: _tune(prepared, test, reporter, settings.tuning_steps, edge_url)
            )
    calibrated = prepared.evaluation.calibration.threshold
    link = link_for(prepared.pipeline.spec, prepared.devices["edge"].spec)
    chosen = min(rows, key=lambda r: abs(r.threshold - calibrated))
    measured = MeasuredReport(
        plan_hash=prepared.plan.hash,
        pipeline=prepared.pipeline.metadata.name,
        calibrated_threshold=calibrated,
        edge_slowdown=prepared.devices["edge"].spec.emulation.slowdown,
        cloud_slowdown=prepared.devices["cloud"].spec.emulation.slowdown,
        bandwidth_mbps=link.bandwidth_mbps,
        rtt_ms=link.rtt_ms,
        rows=tuple(rows),
        verdict=verdict(chosen),
        baselines=baselines,
    )
    return Served(measured, tuned)


def _baselines(
    prepared: Prepared, test: Dataset, reporter: Reporter, settings: ServeSettings, bus: LocalBus
) -> tuple[BaselineRow, ...]:
    """Replay `test` through an edge pinned to each baseline's route, one after the other,
    against the run's cloud (which loaded the whole chain)."""
    plan, spec = prepared.plan, prepared.pipeline.spec
    request = plan_request(spec, prepared.devices["edge"].spec)
    logs = prepared.out / "logs"
    rows = []
    for name, route in ROUTES.items():
        point = route.format(final=plan.final_cut)
        predicted = baseline_plan(
            prepared.edge, prepared.cloud, request, on_edge=name == "edge_only"
        )
        args = [
            *server_args(prepared, "edge", prepared.out / "cache"),
            "--adapt", "off", "--pin-point", point, "--whole-chain",
        ]  # fmt: skip
        with running([bus.server("edge", args, logs / f"edge-{name}.log")]) as [edge]:
            replayed = run_interruptible(
                partial(
                    _replay_once,
                    edge.url,
                    name,
                    pipeline=prepared.pipeline.metadata.name,
                    test=test,
                    reporter=reporter,
                    concurrency=settings.concurrency,
                )
            )
        rows.append(baseline_row(name, point, replayed, predicted.final_latency_ms))
        reporter.info(
            f"{name} ({point}): mean {rows[-1].latency_mean_ms:.1f} ms (predicted "
            f"{predicted.final_latency_ms:.1f}), accuracy {rows[-1].accuracy:.2%}"
        )
    return tuple(rows)


async def _replay_once(
    edge_url: str, title: str, *, pipeline: str, test: Dataset, reporter: Reporter, concurrency: int
) -> Replayed:
    with reporter.progress(f"{title}: replaying {len(test)} test samples") as bar:
        return await replay(edge_url, pipeline, test, concurrency=concurrency, progress=bar)


async def _tune(
    prepared: Prepared,
    test: Dataset,
    reporter: Reporter,
    steps: tuple[ArrivalStep, ...],
    edge_url: str,
) -> Tuned:
    """Replay `test` open-loop on the schedule of `steps`, then read the edge's report."""
    total = sum(step.seconds for step in steps)
    schedule_text = ", ".join(step.text for step in steps)
    started = time.time()
    with reporter.progress(f"tuning: {schedule_text} ({total:.0f} s)") as bar:
        replay = await paced_replay(
            edge_url, prepared.pipeline.metadata.name, test, steps, progress=bar
        )
    report = await fetch_tuning(edge_url)
    reporter.info(
        f"tuning: {replay.answered} of {replay.sent} requests answered, {replay.refused} "
        f"refused; {len(report.windows)} windows measured"
    )
    return Tuned(replay, steps, started, report)


async def _measure(
    prepared: Prepared,
    test: Dataset,
    reporter: Reporter,
    settings: ServeSettings,
    *,
    control: NatsSettings,
    edge_url: str,
) -> list[MeasuredRow]:
    meta = prepared.pipeline.metadata
    predicted = {r.threshold: r for r in prepared.evaluation.test.rows}
    rows = []
    async with await Messenger.connect(settings=control, name="inferedge-run") as messenger:
        for threshold in settings.thresholds:
            await reload_pipeline(
                messenger,
                meta.namespace,
                meta.name,
                threshold=threshold,
                replicas={"cloud": 1, "edge": 1},
            )
            with reporter.progress(
                f"replaying {len(test)} test samples at c_thr {threshold:.2f}"
            ) as bar:
                replayed = await replay(
                    edge_url, meta.name, test, concurrency=settings.concurrency, progress=bar
                )
            rows.append(
                measured_row(
                    prepared.plan,
                    threshold,
                    replayed,
                    predicted[threshold],
                    prepared.evaluation.test,
                )
            )
    return rows
