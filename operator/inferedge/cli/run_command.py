"""`inferedge run -f pipeline.yaml`: the whole pipeline on this machine, then measured live."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from inferedge.cli.params import FiniteFloat, FloatList, LinkTraceChoice
from inferedge.core.link_trace import LinkTrace

if TYPE_CHECKING:
    from inferedge.api.documents import Documents
    from inferedge.api.pipeline import InferencePipeline
    from inferedge.local.runner import Prepared
from inferedge.cli.views import measured_table, print_renderable, progress_bar

# Thresholds replayed when --thresholds is not given, besides the calibrated one.
DEFAULT_REPLAY = (0.3, 0.5, 0.7, 0.9)
# The tuning phase: a quiet minute, then a busy one (an arrival-rate step of 4x).
DEFAULT_TUNING_ARRIVALS = "fixed:60ms@60s,fixed:15ms@60s"


class _CliReporter:
    """Lines to stdout, progress bars to the terminal."""

    def info(self, text: str) -> None:
        click.echo(text)

    @contextmanager
    def progress(self, title: str) -> Iterator[Callable[[int, int], None]]:
        with progress_bar(title) as bar:
            yield bar


def _interrupt_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so the servers and the broker are stopped on the way."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


@click.command()
@click.option(
    "-f",
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="A YAML file with the InferencePipeline and its two DeviceProfiles (what you would "
    "`kubectl apply`).",
)
@click.option(
    "--pipeline",
    "pipeline_name",
    help="Which InferencePipeline of the file to run [default: the only one].",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/run"),
    show_default=True,
    help="Run directory: every step's output, the store, server logs and the reports.",
)
@click.option(
    "--thresholds",
    type=FloatList(),
    help="c_thr values to replay the test split at [default: 0.3,0.5,0.7,0.9 and the "
    "calibrated one].",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Requests in flight during the replay; 1 measures latency as the planner models it.",
)
@click.option(
    "--server-threads",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Compute threads of each server process (OpenMP/MKL, TensorFlow pools).",
)
@click.option(
    "--tuning-arrivals",
    default=DEFAULT_TUNING_ARRIVALS,
    show_default=True,
    metavar="PATTERN@SECONDSs[,...]",
    help="When the edge DeviceProfile has spec.tuning: after the threshold replays, send the "
    "test split open-loop on this schedule (patterns fixed:50ms, bursty:10/500ms, "
    "poisson:70ms, or trace:FILE of timestamps) and save report/tuning.{md,json,png}.",
)
@click.option(
    "--link-trace",
    type=LinkTraceChoice(),
    default="step",
    show_default=True,
    help="With spec.adaptation: the emulated link's trace, a built-in (step: 20, 1, then 8 "
    "Mbps, a third each; walk: a seeded random walk, 0.5 to 50 Mbps) or a CSV of "
    "t_s,bandwidth_mbps,rtt_ms rows.",
)
@click.option(
    "--trace-seconds",
    type=FiniteFloat(min=3, max=86_400),
    default=45.0,
    show_default=True,
    help="With spec.adaptation: how long each policy replays over the trace.",
)
@click.option(
    "--site-seconds",
    type=FiniteFloat(min=3, max=86_400),
    default=20.0,
    show_default=True,
    help="With spec.distribution (a site of several edge pools): how long the dispatcher is "
    "sent requests at the target rate.",
)
@click.option(
    "--measure-seconds",
    type=FiniteFloat(min=0, max=3600),
    default=6.0,
    show_default=True,
    help="With spec.distribution: how long each (device class, version) of the exploration "
    "table is served on a replica of its own and measured before the decision (0: decide from "
    "the profiles' estimates, which leave out what serving adds).",
)
@click.option(
    "--serve/--no-serve",
    default=True,
    show_default=True,
    help="Start the servers and replay the test split; --no-serve stops after the export.",
)
def run(
    *,
    file: Path,
    pipeline_name: str | None,
    out: Path,
    thresholds: tuple[float, ...] | None,
    concurrency: int,
    server_threads: int,
    tuning_arrivals: str,
    link_trace: str | LinkTrace,
    trace_seconds: float,
    site_seconds: float,
    measure_seconds: float,
    serve: bool,
) -> None:
    """Run the InferencePipeline of a YAML file on this machine, with no cluster.

    \b
    Steps, each writing under --out (1, 3 and 4 run as the same `inferedge cluster ...`
    commands the operator's Jobs run, against a local store under --out/store):
      1. profile the edge and the cloud as their DeviceProfiles' emulation says,
      2. plan the split and the exits,
      3. train the backbone (unless spec.model.weightsUri or uri gives it) and the exits
         on the dataset (test split held out), calibrate c_thr,
      4. export both partitions as one artifact set,
      5. start an embedded nats-server and `inferedge serve cloud|edge` as processes,
         replay the test split through the edge's HTTP API at several thresholds,
      6. print measured accuracy, latency and offloads next to the planner's prediction,
         and save report/measured.{md,json,png};
      7. when the edge DeviceProfile has spec.tuning, replay on --tuning-arrivals while the
         edge tunes its (emulated) knobs, and save report/tuning.{md,json,png}.
    With spec.adaptation, steps 3 and 4 train and export an operating space, and 5 to 7 are
    instead: replay the test split over the --link-trace under the static plan, the adaptive
    edge and the per-state oracle, and save report/adaptation.{md,json,png}.
    With spec.distribution (a site of several edge pools), steps 1 to 4 run for every version
    of the model, each version is profiled on every pool's device class and served on a replica
    of its own for --measure-seconds, the exploration table decides each pool's version and
    share, and 5 to 7 are instead: start each pool's replicas
    and `inferedge dispatch`, send the test split to the dispatcher at the target rate for
    --site-seconds, and save report/site.{md,json} and versions.png.
    Ctrl-C stops every process it started.
    """
    from inferedge.api.documents import DocumentError, parse_documents
    from inferedge.local.measured import write_measured
    from inferedge.local.runner import prepare
    from inferedge.local.serving import ServeSettings, serve_and_measure
    from inferedge.local.tuning_replay import parse_steps, write_tuning

    try:
        steps = parse_steps(tuning_arrivals)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--tuning-arrivals'") from None

    _interrupt_on_sigterm()
    source = str(file)
    docs = parse_documents(file.read_text(encoding="utf-8"), source)
    names = [p.metadata.name for p in docs.pipelines]
    if pipeline_name is None and len(names) != 1:
        raise DocumentError(
            f"{source}: holds {len(names)} InferencePipelines ({', '.join(names) or 'none'}); "
            "name one with --pipeline"
        )
    chosen = pipeline_name or names[0]
    if chosen not in names:
        raise DocumentError(
            f"{source}: no InferencePipeline {chosen!r} (found: {', '.join(names) or 'none'})"
        )
    pipeline = docs.pipelines[names.index(chosen)]
    reporter = _CliReporter()
    pools = pipeline.spec.edge.resolved_pools()
    if pipeline.spec.distribution is None and len(pools) > 1:
        reporter.info(
            f"spec.edge.pools: without spec.distribution this run serves the first pool "
            f"({pools[0].name}) only; set spec.distribution to run the site of {len(pools)} pools"
        )
    if pipeline.spec.distribution is not None:
        _site(
            docs, pipeline, out, reporter,
            source=source, threads=server_threads, seconds=site_seconds, serve=serve,
            measure_s=measure_seconds,
        )  # fmt: skip
        return
    prepared = prepare(
        docs,
        pipeline,
        out,
        reporter,
        source,
        thresholds=thresholds or DEFAULT_REPLAY,
        threads=server_threads,
    )
    if not serve:
        return
    if prepared.manifest.space is not None:
        _adapt(prepared, reporter, link_trace, trace_seconds, server_threads)
        return
    calibrated = prepared.evaluation.calibration.threshold
    replayed = tuple(sorted({*(thresholds or DEFAULT_REPLAY), calibrated}))
    served = serve_and_measure(
        prepared,
        prepared.splits.test,
        reporter,
        ServeSettings(
            thresholds=replayed,
            concurrency=concurrency,
            threads=server_threads,
            tuning_steps=steps,
        ),
    )
    report = served.measured
    print_renderable(measured_table(report))
    click.echo(report.verdict)
    paths = write_measured(report, out / "report")
    if served.tuned is not None:
        tuned = served.tuned
        paths += write_tuning(
            tuned.report, tuned.steps, tuned.replay, tuned.started_unix, out / "report"
        )
    click.echo(f"reports: {', '.join(str(p) for p in paths)}")


def _adapt(
    prepared: Prepared,
    reporter: _CliReporter,
    link_trace: str | LinkTrace,
    seconds: float,
    threads: int,
) -> None:
    """The adaptation phase and its report."""
    from inferedge.api.convert import link_for
    from inferedge.core.link_trace import builtin_trace
    from inferedge.local.adapting import AdaptSettings, adapt_and_measure
    from inferedge.report.adaptation import adaptation_markdown, write_adaptation

    if isinstance(link_trace, str):
        declared = link_for(prepared.pipeline.spec, prepared.devices["edge"].spec)
        link_trace = builtin_trace(link_trace, seconds, rtt_ms=declared.rtt_ms)
    run = adapt_and_measure(
        prepared,
        prepared.splits.test,
        reporter,
        AdaptSettings(trace=link_trace, duration_s=seconds, threads=threads),
    )
    click.echo(adaptation_markdown(run))
    paths = write_adaptation(run, prepared.out / "report")
    click.echo(f"reports: {', '.join(str(p) for p in paths)}")


def _site(
    docs: Documents,
    pipeline: InferencePipeline,
    out: Path,
    reporter: _CliReporter,
    *,
    source: str,
    threads: int,
    seconds: float,
    serve: bool,
    measure_s: float,
) -> None:
    """A site of several edge pools: every version prepared, decided, served at the target."""
    from inferedge.cli.views import versions_table
    from inferedge.core.site_choice import pool_versions
    from inferedge.local.site import prepare_site
    from inferedge.local.site_serving import SiteSettings, serve_policy
    from inferedge.report.site import distribution_markdown, write_site

    site = prepare_site(docs, pipeline, out, reporter, source, threads=threads, measure_s=measure_s)
    print_renderable(versions_table(list(site.table)))
    click.echo(distribution_markdown(site.distribution))
    served = status = None
    if serve:
        target = pipeline.spec.distribution
        versions = pool_versions(
            site.policy_pools(), site.distribution, target.min_accuracy if target else 0.0
        )
        result = serve_policy(
            site, "ours", versions, site.distribution.target, reporter=reporter,
            settings=SiteSettings(seconds=seconds, threads=threads),
        )  # fmt: skip
        replay, status = result.replay, result.status
        served = {
            "rate": replay.rate, "sent": replay.sent, "answered": replay.answered,
            "refused": replay.refused, "lost": replay.lost, "offered": replay.offered,
            "throughput": replay.throughput,
            "accuracy": replay.accuracy, "seconds": replay.seconds,
        }  # fmt: skip
    paths = write_site(site.table, site.distribution, served, status, out / "report")
    click.echo(f"reports: {', '.join(str(p) for p in paths)}")
