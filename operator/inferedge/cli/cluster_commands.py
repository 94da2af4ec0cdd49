"""`inferedge cluster ...`: the pipeline's steps, as operator Jobs and `inferedge run` run them.

Each command only parses its arguments into the step's typed value (`inferedge.api.jobs`) and
calls the step (`inferedge.steps`); the options are generated from that value, so what the
operator renders and what this CLI accepts are one declaration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, get_args, get_origin

import click
from pydantic import BaseModel

from inferedge.api.jobs import ExportJob, JobArgs, JobArgsError, ProfileJob, TrainJob

Command = TypeVar("Command", bound=Callable[..., Any])
Args = TypeVar("Args", bound=JobArgs)


def job_options(args_type: type[JobArgs]) -> Callable[[Command], Command]:
    """One option per field of `args_type`, named by its flag and read as text; the value's own
    validation then turns the texts into the typed arguments (`parse`)."""

    def decorate(command: Command) -> Command:
        for name, info in reversed(list(args_type.model_fields.items())):
            env = args_type.env_name(name)
            flag = args_type.flag(name)
            default = "" if info.is_required() else f" [default: {_shown(info.default)}]"
            where = f" [env: {env}]" if env else ""
            command = click.option(
                flag,
                name,
                envvar=env,
                required=info.is_required(),
                metavar=_metavar(info.annotation),
                help=f"{info.description or ''}{default}{where}",
            )(command)
        return command

    return decorate


def _metavar(kind: object) -> str:
    """What a value looks like on the command line, from its declared type."""
    kinds = [k for k in (get_args(kind) or (kind,)) if k is not type(None)]
    if get_origin(kind) is Literal:
        return "[" + "|".join(str(k) for k in kinds) + "]"
    first = kinds[0] if kinds else kind
    if get_origin(first) is tuple or get_origin(kind) is tuple:
        return "N[,N...]"
    if get_origin(first) is Literal:
        return "[" + "|".join(str(k) for k in get_args(first)) + "]"
    if isinstance(first, type) and issubclass(first, BaseModel):
        return "JSON"
    return {int: "INT", float: "FLOAT"}.get(first, "TEXT") if isinstance(first, type) else "TEXT"


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "none"
    return "none" if value is None else str(value)


def _parse(args_type: type[Args], values: dict[str, Any]) -> Args:
    try:
        return args_type.parse(values)
    except JobArgsError as exc:
        raise click.UsageError(str(exc)) from None


@click.group("cluster")
def cluster() -> None:
    """The pipeline's steps against an artifact store: what the operator's Jobs run, and what
    `inferedge run` runs as child processes."""


@cluster.command("profile")
@job_options(ProfileJob)
def profile(**values: Any) -> None:
    """Measure the model segment by segment on this node and write the profile to the store."""
    from inferedge.steps.profile import run_profile
    from inferedge.steps.reporting import LineReporter

    run_profile(_parse(ProfileJob, values), LineReporter())


@cluster.command("train")
@job_options(TrainJob)
def train(**values: Any) -> None:
    """Train the backbone (unless spec.model.weightsUri or uri gives it) and the plan's exits;
    calibrate c_thr."""
    from inferedge.steps.reporting import LineReporter
    from inferedge.steps.training import run_training

    run_training(_parse(TrainJob, values), LineReporter())


@cluster.command("export")
@job_options(ExportJob)
def export(**values: Any) -> None:
    """Export both partitions with their exits and publish them, manifest last, as the set the
    training step named (an export of a set already committed keeps it)."""
    from inferedge.steps.export import run_export
    from inferedge.steps.reporting import LineReporter

    run_export(_parse(ExportJob, values), LineReporter())
