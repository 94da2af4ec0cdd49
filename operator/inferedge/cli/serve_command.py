"""`inferedge serve edge|cloud`: run one partition server (what the operator's pods run)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from inferedge.api.tuning import KnobEmulationSpec, TuningSpec
from inferedge.cli.artifact_commands import store_option
from inferedge.cli.params import (
    CutSpanType,
    FiniteFloat,
    LabelType,
    LinkTraceFile,
    PointType,
    SetPinType,
    SetPrefixType,
    Sha256Type,
    SpecJson,
    host_option,
    nats_url_option,
)
from inferedge.core.link import Link
from inferedge.core.link_trace import LinkTrace
from inferedge.core.operating_space import OperatingPoint


@click.command()
@click.argument("role", type=click.Choice(["edge", "cloud"]))
@store_option
@click.option(
    "--prefix",
    required=True,
    type=SetPrefixType(),
    envvar="INFEREDGE_PREFIX",
    help="Artifact set to serve: <namespace>/<pipeline>/<plan-hash>/<set-id> "
    "[env: INFEREDGE_PREFIX].",
)
@click.option(
    "--manifest-sha256",
    required=True,
    type=Sha256Type(),
    envvar="INFEREDGE_MANIFEST_SHA256",
    help="sha256 of the set's manifest.json, from a source you trust (the operator's "
    "ConfigMap, `inferedge artifacts`); the set is refused unless its manifest matches "
    "[env: INFEREDGE_MANIFEST_SHA256].",
)
@click.option(
    "--pin",
    "pins",
    multiple=True,
    type=SetPinType(),
    envvar="INFEREDGE_PINNED_SETS",
    help="Another set a reload command may switch to, with its manifest's sha256; repeatable "
    "[env: INFEREDGE_PINNED_SETS, space-separated].",
)
@nats_url_option
@host_option
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="0: any free."
)
@click.option(
    "--threshold",
    type=FiniteFloat(min=0),
    help="c_thr [default: the calibrated one in the manifest]; above 1 disables early exits.",
)
@click.option("--offload-timeout-ms", type=FiniteFloat(min=1), default=2000, show_default=True)
@click.option("--max-batch-size", type=click.IntRange(1, 4096), default=32, show_default=True)
@click.option("--max-wait-ms", type=FiniteFloat(min=0), default=5.0, show_default=True)
@click.option(
    "--max-queued-samples",
    type=click.IntRange(1, 1 << 20),
    default=256,
    show_default=True,
    help="Cloud only: samples accepted and not answered yet; an offload past it is refused "
    "at once (the edge answers it degraded, reason cloud_busy).",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(1, 65536),
    default=128,
    show_default=True,
    help="Cloud only: offloads taken in at once, so the batcher can batch them; one more is "
    "refused at once as busy.",
)
@click.option(
    "--offloads-in-flight",
    type=click.IntRange(1, 1024),
    default=2,
    show_default=True,
    help="Edge only: offload messages on the wire at once; offloads that arrive meanwhile wait "
    "and leave together as one message, so busy edges pay the per-message cost once per group.",
)
@click.option(
    "--edge-batch-size",
    type=click.IntRange(1, 4096),
    default=1,
    show_default=True,
    help="Edge only: requests that queue while the edge computes run together, up to this many "
    "samples (a larger request runs alone); 1 runs one request at a time.",
)
@click.option(
    "--edge-max-wait-ms",
    type=FiniteFloat(min=0),
    default=0.0,
    show_default=True,
    help="Edge only: how long a batch short of --edge-batch-size may wait for more requests "
    "after its oldest one arrived; 0 runs what is queued as soon as the edge is free.",
)
@click.option(
    "--tuning",
    type=SpecJson(TuningSpec, "tuning"),
    envvar="INFEREDGE_SERVE_TUNING",
    help="Edge only (the cloud ignores it, as the pipeline's ConfigMap serves both): tune the "
    "batch size and clocks online, as a DeviceProfile's spec.tuning "
    'in JSON, e.g. \'{"optimiser": "ecogd"}\' (off when unset) [env: '
    "INFEREDGE_SERVE_TUNING]. Its report is at GET /tuning.",
)
@click.option(
    "--clock-agent-socket",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("/run/inferedge/clocks.sock"),
    show_default=True,
    envvar="INFEREDGE_SERVE_CLOCK_AGENT_SOCKET",
    help="Edge only, with --tuning: the node's clock agent (`inferedge agent`); without one "
    "only the batch size is tuned [env: INFEREDGE_SERVE_CLOCK_AGENT_SOCKET].",
)
@click.option(
    "--emulate-knobs",
    type=SpecJson(KnobEmulationSpec, "emulate-knobs"),
    envvar="INFEREDGE_SERVE_EMULATE_KNOBS",
    help="Edge only, with --tuning: clocks and power of an emulated device, as a "
    "DeviceProfile's spec.emulation.knobs in JSON, e.g. '{}' for the Xavier NX preset; "
    "every tuning figure is then labelled emulated.",
)
@click.option(
    "--encoding", type=click.Choice(["raw", "fp16", "int8"]), default="raw", show_default=True
)
@click.option(
    "--emulate-slowdown",
    type=FiniteFloat(min=1),
    default=1.0,
    show_default=True,
    help="Stretch every model call (segment or exit head) by this factor, holding the "
    "compute thread busy: a slower device, as in a DeviceProfile's emulation.",
)
@click.option(
    "--emulate-hold",
    type=click.Choice(["spin", "sleep"]),
    default="spin",
    show_default=True,
    help="How --emulate-slowdown holds the compute thread: spin (busy, as a loaded board "
    "and as profiles are measured) or sleep (idle: several emulated boards on fewer host "
    "cores, as a local site's pools).",
)
@click.option(
    "--emulate-bandwidth-mbps",
    type=FiniteFloat(min=0, min_open=True),
    help="Edge only: offloads pay this uplink bandwidth (with --emulate-rtt-ms).",
)
@click.option(
    "--emulate-rtt-ms",
    type=FiniteFloat(min=0),
    help="Edge only: offloads pay this round-trip time (with --emulate-bandwidth-mbps).",
)
@click.option(
    "--link-bandwidth-mbps",
    type=FiniteFloat(min=0, min_open=True),
    help="Edge only: the uplink the plan was made for (its DeviceProfile's); the edge's link "
    "estimate starts there [default: the emulated link's, else 20].",
)
@click.option(
    "--link-rtt-ms",
    type=FiniteFloat(min=0),
    help="Edge only: the round-trip time the plan was made for (with --link-bandwidth-mbps) "
    "[default: the emulated link's, else 20].",
)
@click.option(
    "--emulate-link-trace",
    type=LinkTraceFile(),
    help="Edge only: offloads pay the link of the moment from this CSV of "
    "t_s,bandwidth_mbps,rtt_ms rows (piecewise constant), instead of a fixed link.",
)
@click.option(
    "--emulate-link-origin",
    type=FiniteFloat(min=0),
    metavar="UNIX_SECONDS",
    help="With --emulate-link-trace: when t_s=0 is (Unix time, so several processes share "
    "it) [default: the first offload].",
)
@click.option(
    "--adapt",
    type=click.Choice(["follow", "off", "oracle"]),
    default="follow",
    show_default=True,
    envvar="INFEREDGE_SERVE_ADAPT",
    help="Edge of an operating space (spec.adaptation): follow the link it measures, keep "
    "the point of the declared link (off), or follow the emulated trace's true link (oracle, "
    "with --emulate-link-trace).",
)
@click.option(
    "--pin-point",
    type=PointType(),
    envvar="INFEREDGE_SERVE_PIN_POINT",
    help="Edge, with --adapt off: serve this route whatever the link, e.g. 12/-/- (the "
    "whole model here: edge-only) or 0/-/- (the raw input to the cloud: cloud-only). An "
    "operating space serves any of its points; a plain set only these two baselines, and "
    "the side that runs beyond its own part needs --whole-chain.",
)
@click.option(
    "--whole-chain",
    is_flag=True,
    envvar="INFEREDGE_SERVE_WHOLE_CHAIN",
    help="Load every step of the set, not only this side's part: for a cloud that answers "
    "cloud-only offloads (0/-/-) of a plain set, or an edge pinned to the whole model.",
)
@click.option(
    "--switch-confirmations",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    envvar="INFEREDGE_SERVE_SWITCH_CONFIRMATIONS",
    help="Edge of an operating space: link estimates in a row that must pick the same new "
    "point before it moves.",
)
@click.option(
    "--switch-min-dwell-s",
    type=FiniteFloat(min=0, max=3600),
    default=2.0,
    show_default=True,
    envvar="INFEREDGE_SERVE_SWITCH_MIN_DWELL_S",
    help="Edge of an operating space: seconds a point is kept at least.",
)
@click.option(
    "--probe-interval-ms",
    type=FiniteFloat(min=10, max=600_000),
    default=200.0,
    show_default=True,
    envvar="INFEREDGE_SERVE_PROBE_INTERVAL_MS",
    help="Edge of an operating space: probe the link after this long without an offload "
    "(an edge-heavy point offloads rarely; the probes are how it sees the link recover).",
)
@click.option(
    "--answer-at-exit",
    type=click.IntRange(1, 3),
    envvar="INFEREDGE_ANSWER_AT_EXIT",
    help="Edge: serve the model truncated at its K-th edge exit (a lighter version of it: "
    "no earlier exit is tested, and that one answers every request) "
    "[env: INFEREDGE_ANSWER_AT_EXIT].",
)
@click.option(
    "--pool",
    type=LabelType(),
    envvar="INFEREDGE_POOL",
    help="Edge of a site of several pools: this replica's pool. It then also takes the site "
    "dispatcher's requests over NATS and sends it heartbeats [env: INFEREDGE_POOL].",
)
@click.option(
    "--replica",
    type=LabelType(),
    envvar="INFEREDGE_REPLICA",
    help="With --pool: this replica's name in its pool, unique there (a pod's name) "
    "[env: INFEREDGE_REPLICA].",
)
@click.option(
    "--stage",
    type=CutSpanType(),
    envvar="INFEREDGE_STAGE",
    help="With --pool: this replica is one stage of a pipeline over the site's pools: it runs "
    "its edge part from cut START to cut END (step boundaries of the plan) on the "
    "activations the dispatcher sends, answers the rows an exit takes on the way, and "
    "returns the rest's activations at END [env: INFEREDGE_STAGE].",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".inferedge-cache"),
    show_default=True,
    help="Where verified partition files are kept between restarts.",
)
def serve(
    *,
    role: str,
    store: str,
    prefix: str,
    manifest_sha256: str,
    pins: tuple[tuple[str, str], ...],
    nats_url: str | None,
    host: str,
    port: int,
    threshold: float | None,
    offload_timeout_ms: float,
    max_batch_size: int,
    max_wait_ms: float,
    max_queued_samples: int,
    max_in_flight: int,
    offloads_in_flight: int,
    edge_batch_size: int,
    edge_max_wait_ms: float,
    tuning: TuningSpec | None,
    clock_agent_socket: Path,
    emulate_knobs: KnobEmulationSpec | None,
    encoding: str,
    emulate_slowdown: float,
    emulate_hold: str,
    emulate_bandwidth_mbps: float | None,
    emulate_rtt_ms: float | None,
    link_bandwidth_mbps: float | None,
    link_rtt_ms: float | None,
    emulate_link_trace: LinkTrace | None,
    emulate_link_origin: float | None,
    adapt: str,
    pin_point: OperatingPoint | None,
    whole_chain: bool,
    switch_confirmations: int,
    switch_min_dwell_s: float,
    probe_interval_ms: float,
    answer_at_exit: int | None,
    pool: str | None,
    replica: str | None,
    stage: tuple[int, int] | None,
    cache_dir: Path,
) -> None:
    """Serve the edge or cloud part of an artifact set until SIGTERM or Ctrl-C.

    The edge answers `POST /v2/models/<pipeline>/infer` and offloads unconfident requests over
    NATS; the cloud answers offloads in the workers' queue group. Both serve /v2/health/* and
    /metrics. Reload commands (`inferedge reload`) swap plans or change c_thr live.
    """
    from inferedge.core.link_switch import SwitchPolicy
    from inferedge.runtime.policy import BatchPolicy
    from inferedge.runtime.serve_config import ServeConfig
    from inferedge.runtime.server import serve as run_server

    link: Link | LinkTrace | None = emulate_link_trace
    if (emulate_bandwidth_mbps is None) != (emulate_rtt_ms is None):
        raise click.UsageError("--emulate-bandwidth-mbps and --emulate-rtt-ms go together")
    if emulate_bandwidth_mbps is not None and emulate_rtt_ms is not None:
        if link is not None:
            raise click.UsageError(
                "give --emulate-link-trace or --emulate-bandwidth-mbps, not both"
            )
        link = Link(bandwidth_mbps=emulate_bandwidth_mbps, rtt_ms=emulate_rtt_ms)
    if link is not None and role != "edge":
        raise click.UsageError(
            "--emulate-bandwidth-mbps/--emulate-link-trace: only the edge offloads"
        )
    if emulate_link_origin is not None and emulate_link_trace is None:
        raise click.UsageError("--emulate-link-origin goes with --emulate-link-trace")
    if (link_bandwidth_mbps is None) != (link_rtt_ms is None):
        raise click.UsageError("--link-bandwidth-mbps and --link-rtt-ms go together")
    if pin_point is not None and adapt != "off":
        raise click.UsageError("--pin-point keeps one route: it goes with --adapt off")
    if adapt == "oracle" and emulate_link_trace is None:
        raise click.UsageError(
            "--adapt oracle follows a trace's true link: give --emulate-link-trace"
        )
    if (pool is None) != (replica is None):
        raise click.UsageError("--pool and --replica go together")
    if answer_at_exit is not None and role != "edge":
        raise click.UsageError("--answer-at-exit: only the edge has exits to answer at")
    if pool is not None and role != "edge":
        raise click.UsageError("--pool: only edge replicas belong to a site's pools")
    if stage is not None and pool is None:
        raise click.UsageError("--stage: only a replica of a site's pool (--pool) is a stage")
    if stage is not None and answer_at_exit is not None:
        raise click.UsageError("--stage and --answer-at-exit: a stage runs its cuts, not a version")
    declared = None
    if link_bandwidth_mbps is not None and link_rtt_ms is not None:
        declared = Link(bandwidth_mbps=link_bandwidth_mbps, rtt_ms=link_rtt_ms)
    config = ServeConfig(
        role=role,  # type: ignore[arg-type]
        store_uri=store,
        prefix=prefix,
        manifest_sha256=manifest_sha256,
        pinned_sets=dict(pins),
        cache_dir=cache_dir,
        nats_url=nats_url,
        host=host,
        port=port,
        threshold=threshold,
        offload_timeout_s=offload_timeout_ms / 1000,
        batch_policy=BatchPolicy(max_batch_size, max_wait_ms, max_queued_samples),
        max_in_flight=max_in_flight,
        offloads_in_flight=offloads_in_flight,
        edge_batch_size=edge_batch_size,
        edge_max_wait_ms=edge_max_wait_ms,
        tuning=tuning,
        clock_agent_socket=clock_agent_socket,
        emulated_knobs=emulate_knobs,
        encoding=encoding,  # type: ignore[arg-type]
        compute_slowdown=emulate_slowdown,
        emulated_hold=emulate_hold,  # type: ignore[arg-type]
        emulated_link=link,
        emulated_link_origin=emulate_link_origin,
        declared_link=declared,
        adapt=adapt,  # type: ignore[arg-type]
        pin_point=pin_point,
        whole_chain=whole_chain,
        switch_policy=SwitchPolicy(switch_confirmations, switch_min_dwell_s),
        probe_interval_s=probe_interval_ms / 1000,
        answer_at_exit=answer_at_exit,
        pool=pool,
        replica=replica,
        stage=stage,
    )
    asyncio.run(run_server(config, announce=click.echo))
