"""`inferedge analyze`: Infer-EDGE's per-cut analysis of a profiled model."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from inferedge.cli.views import analysis_tables, print_renderable
from inferedge.core.cut_analysis import DEFAULT_BANDWIDTHS_MBPS, analyze_cuts
from inferedge.core.profile import parse_profile
from inferedge.report.cuts import analysis_markdown, plot_analysis


@click.command()
@click.option(
    "--edge",
    "edge_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Edge device profile JSON (`inferedge profile`).",
)
@click.option(
    "--cloud",
    "cloud_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Cloud device profile JSON of the same model.",
)
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
    edge = parse_profile(edge_path.read_text(encoding="utf-8"), str(edge_path))
    cloud = parse_profile(cloud_path.read_text(encoding="utf-8"), str(cloud_path))
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
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "cuts.json").write_text(text, encoding="utf-8")
        (report_dir / "cuts.md").write_text(analysis_markdown(analysis), encoding="utf-8")
        plot_analysis(analysis, report_dir)
    if as_json:
        click.echo(text, nl=False)
    else:
        for table in analysis_tables(analysis):
            print_renderable(table)
