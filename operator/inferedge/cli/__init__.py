"""The `inferedge` command line: profile a model, list its cut points, plan a split.

Commands are thin: they parse and validate flags, call the backend or the pure planner, and
render. Every flag can also come from an environment variable INFEREDGE_<COMMAND>_<FLAG>, e.g.
INFEREDGE_PLAN_BANDWIDTH_MBPS=8.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from inferedge import __version__
from inferedge.cli.agent_command import agent
from inferedge.cli.analysis_commands import analyze, versions
from inferedge.cli.artifact_commands import export, verify
from inferedge.cli.cluster_commands import cluster
from inferedge.cli.commands import cuts, plan, profile, zoo
from inferedge.cli.dispatch_command import dispatch
from inferedge.cli.exits_commands import evaluate, render_exits, report, train_backbone, train_exits
from inferedge.cli.operator_command import operator
from inferedge.cli.reload_command import reload
from inferedge.cli.run_command import run
from inferedge.cli.serve_command import serve
from inferedge.core.errors import InferedgeError

EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="inferedge")
def cli() -> None:
    """Split deep neural networks across edge and cloud, with early exits.

    \b
    First run, the whole pipeline on this machine:
      inferedge run -f examples/digits-pipeline.yaml
    \b
    Step by step:
      inferedge profile resnet50 --device-name cloud -o cloud.json
      inferedge profile resnet50 --device-name edge --emulate-slowdown 6 -o edge.json
      inferedge plan --edge edge.json --cloud cloud.json --strategy latency --placement pareto
    """


cli.add_command(profile)
cli.add_command(plan)
cli.add_command(analyze)
cli.add_command(versions)
cli.add_command(cuts)
cli.add_command(zoo)
for command in (train_backbone, train_exits, render_exits, evaluate, report, export, verify, serve):
    cli.add_command(command)
cli.add_command(cluster)
cli.add_command(operator)
cli.add_command(run)
cli.add_command(reload)
cli.add_command(dispatch)
cli.add_command(agent)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors print one line on stderr and exit 2."""
    try:
        cli.main(
            args=argv, prog_name="inferedge", standalone_mode=False, auto_envvar_prefix="INFEREDGE"
        )
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        hint = f" (see `inferedge {exc.ctx.info_name} --help`)" if exc.ctx else ""
        if exc.ctx and exc.ctx.parent is None:
            hint = " (see `inferedge --help`)"
        click.echo(f"error: {_one_line(exc.format_message())}{hint}", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        click.echo(f"error: {_one_line(exc.format_message())}", err=True)
        sys.exit(EXIT_USAGE)
    except InferedgeError as exc:
        click.echo(f"error: {_one_line(str(exc))}", err=True)
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        where = f" {Path(exc.filename)}" if exc.filename else ""
        click.echo(f"error:{where}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_USAGE)
