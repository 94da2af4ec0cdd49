"""`inferedge analyze` and `inferedge versions`: Infer-EDGE's analyses of profiled models, per
cut point of one model and across versions of it."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from inferedge.cli.params import (
    NamedAccuracy,
    cloud_profile_option,
    edge_profile_option,
    read_profile,
)
from inferedge.cli.views import analysis_tables, print_renderable, versions_table
from inferedge.core.cut_analysis import DEFAULT_BANDWIDTHS_MBPS, analyze_cuts
from inferedge.core.errors import InferedgeError
from inferedge.core.exploration import exploration_row
from inferedge.report.cuts import analysis_markdown, plot_analysis
from inferedge.report.versions import plot_versions, versions_markdown


def _write_report(report_dir: Path, stem: str, text: str, markdown: str) -> None:
    """`stem`.json and `stem`.md under `report_dir` (the plot is the caller's)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / f"{stem}.json").write_text(text, encoding="utf-8")
    (report_dir / f"{stem}.md").write_text(markdown, encoding="utf-8")


@click.command()
@edge_profile_option
@cloud_profile_option
@click.option(
    "--bandwidth-mbps",
    "bandwidths",
    type=click.FloatRange(min=0, min_open=True),
    multiple=True,
    help="A link to split over; repeat for several [default: 8 and 20, Infer-EDGE's].",
)
@click.option("--rtt-ms", type=click.FloatRange(min=0), default=20.0, show_default=True)
@click.option(
    "--radio-w",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Power the edge's radio draws while it sends (your board's figure).",
)
@click.option(
    "--idle-w",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Power the edge draws while it waits for the cloud (your board's figure).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write cuts.md, cuts.json and cuts.png here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
def analyze(
    *,
    edge_path: Path,
    cloud_path: Path,
    bandwidths: tuple[float, ...],
    rtt_ms: float,
    radio_w: float,
    idle_w: float,
    batch_size: int,
    report_dir: Path | None,
    as_json: bool,
) -> None:
    """Per cut point: the edge's time, output bytes and energy; per split and bandwidth: the
    end-to-end latency and the edge's energy; and the best cut by each (Infer-EDGE).

    Pure and fast: no model is loaded. Energy appears where the edge profile measured it
    (Jetson rails); the radio and idle powers are yours to give.
    """
    edge, cloud = read_profile(edge_path), read_profile(cloud_path)
    analysis = analyze_cuts(
        edge,
        cloud,
        bandwidths_mbps=bandwidths or DEFAULT_BANDWIDTHS_MBPS,
        rtt_ms=rtt_ms,
        radio_w=radio_w,
        idle_w=idle_w,
        batch_size=batch_size,
    )
    text = json.dumps(asdict(analysis), indent=2) + "\n"
    if report_dir is not None:
        _write_report(report_dir, "cuts", text, analysis_markdown(analysis))
        plot_analysis(analysis, report_dir)
    if as_json:
        click.echo(text, nl=False)
    else:
        for table in analysis_tables(analysis):
            print_renderable(table)


@click.command()
@click.option(
    "--profile",
    "profile_paths",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    required=True,
    help="A profile of one version on one device class; repeat for every pair.",
)
@click.option(
    "--accuracy",
    "accuracies",
    type=NamedAccuracy(),
    multiple=True,
    required=True,
    help="Each version's measured accuracy, by the model name its profiles carry.",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write versions.md, versions.json and versions.png here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def versions(
    *,
    profile_paths: tuple[Path, ...],
    accuracies: tuple[dict[str, float], ...],
    report_dir: Path | None,
    as_json: bool,
) -> None:
    """The exploration table of a model's versions on your device classes: per (device class,
    version) the latency of one request, one replica's throughput, the energy where measured,
    and the accuracy you give; the versions no other beats on all three are marked (the
    triangle Infer-EDGE draws).

    \b
    inferedge versions --profile r18-nano.json --profile mnv2-nano.json \\
        --accuracy resnet18=0.93,mobilenet_v2=0.90 --report-dir report
    """
    accuracy = {name: value for given in accuracies for name, value in given.items()}
    table = []
    seen: set[tuple[str, str]] = set()
    for path in profile_paths:
        profile = read_profile(path)
        key = (profile.device.name, profile.model.name)
        if key in seen:
            raise InferedgeError(f"{path}: a second profile of {key[1]} on {key[0]}")
        seen.add(key)
        if profile.model.name not in accuracy:
            raise InferedgeError(
                f"--accuracy: no accuracy for {profile.model.name!r} (profiled in {path})"
            )
        table.append(exploration_row(*key, profile, accuracy[profile.model.name]))
    text = json.dumps([asdict(r) for r in table], indent=2) + "\n"
    if report_dir is not None:
        _write_report(report_dir, "versions", text, versions_markdown(table))
        plot_versions(table, report_dir)
    if as_json:
        click.echo(text, nl=False)
    else:
        print_renderable(versions_table(table))
