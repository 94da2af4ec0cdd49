"""`inferedge agent`: the privileged clock agent of an edge node (the chart's clock-agent
DaemonSet runs it); see docs/security.md, "The clock agent: threat model"."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from inferedge.cli.params import FiniteFloat
from inferedge.controller.pods import NON_ROOT_UID
from inferedge.runtime.clock_agent import DEFAULT_SOCKET, MAX_KHZ

FC = TypeVar("FC", bound=Callable[..., object])


def _bound_option(kind: str, end: str) -> Callable[[FC], FC]:
    """`--<kind>-<end>-khz`: one of the admin's bounds on the clocks (the chart's values)."""
    env = f"INFEREDGE_AGENT_{kind.upper()}_{end.upper()}_KHZ"
    which = "Lowest" if end == "min" else "Highest"
    return click.option(
        f"--{kind}-{end}-khz",
        type=click.IntRange(1, MAX_KHZ),
        metavar="KHZ",
        envvar=env,
        help=f"{which} {kind.upper()} clock a wish can get, in kHz [default: the table's "
        f"{which.lower()}] [env: {env}].",
    )


def _check_bounds(kind: str, low: int | None, high: int | None) -> None:
    if low is not None and high is not None and low > high:
        raise click.BadParameter(
            f"{low} is above --{kind}-max-khz {high}", param_hint=f"'--{kind}-min-khz'"
        )


@click.command()
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_SOCKET,
    show_default=True,
    envvar="INFEREDGE_AGENT_SOCKET",
    help="Unix socket the edge pods of this node reach the agent at, in a hostPath directory "
    "they mount [env: INFEREDGE_AGENT_SOCKET].",
)
@click.option(
    "--allowed-uid",
    "allowed_uids",
    type=click.IntRange(0, 2**32 - 2),
    metavar="UID",
    multiple=True,
    default=(NON_ROOT_UID,),
    show_default=True,
    envvar="INFEREDGE_AGENT_ALLOWED_UID",
    help="A uid whose processes may ask (checked with SO_PEERCRED); repeatable. The default is "
    "the runtime images' user [env: INFEREDGE_AGENT_ALLOWED_UID, space-separated].",
)
@_bound_option("cpu", "min")
@_bound_option("cpu", "max")
@_bound_option("gpu", "min")
@_bound_option("gpu", "max")
@click.option(
    "--lease-s",
    type=FiniteFloat(min=1),
    metavar="SECONDS",
    default=120.0,
    show_default=True,
    envvar="INFEREDGE_AGENT_LEASE_S",
    help="A wish that no request renews within this time is forgotten, so a vanished pod "
    "cannot hold clocks [env: INFEREDGE_AGENT_LEASE_S].",
)
@click.option(
    "--sysfs-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    envvar="INFEREDGE_AGENT_SYSFS_ROOT",
    help="The directory that stands for / when looking for sys/devices/...: the chart mounts "
    "the host's /sys at /host/sys and passes /host; tests pass a fake tree "
    "[env: INFEREDGE_AGENT_SYSFS_ROOT].",
)
def agent(
    *,
    socket_path: Path,
    allowed_uids: tuple[int, ...],
    lease_s: float,
    sysfs_root: Path,
    cpu_min_khz: int | None,
    cpu_max_khz: int | None,
    gpu_min_khz: int | None,
    gpu_max_khz: int | None,
) -> None:
    """Set this node's CPU and GPU clocks for the edge pods on it, until SIGTERM or Ctrl-C;
    then put the default clocks back.

    \b
    Needs root and a writable /sys: run it as the chart's clock-agent DaemonSet
    (clockAgent.enabled), never inside an inference pod. It answers only processes of an
    --allowed-uid on this node, one JSON request per line on --socket:
      {"pipeline": "<namespace>/<name>", "cpu_khz": 1420800, "gpu_khz": null}
      {"pipeline": "<namespace>/<name>", "release": true}
    Every wish is held within the --cpu-*/--gpu-* bounds and snapped to the clock table; each
    clock runs at the highest wish of the pipelines on the node (the defaults when none). A
    wish ends with a release, with its connection, or after --lease-s without a request.

    \b
    While it runs, the defaults it found are kept in clock-defaults.json beside --socket: an
    agent killed before it could put them back leaves that file, and the next agent of the
    same boot restores those defaults rather than the pinned limits it finds.
    """
    from inferedge.runtime.clock_agent import AgentSettings, Bounds, ClockAgent, run_agent
    from inferedge.runtime.clock_defaults import boot_id, recorded_defaults
    from inferedge.runtime.clocks import discover_clocks

    _check_bounds("cpu", cpu_min_khz, cpu_max_khz)
    _check_bounds("gpu", gpu_min_khz, gpu_max_khz)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s"
    )
    clocks = discover_clocks(sysfs_root)
    for line in clocks.skipped:
        logging.getLogger("inferedge.runtime.clocks").warning("%s", line)
    settings = AgentSettings(
        allowed_uids=frozenset(allowed_uids),
        socket_path=socket_path,
        bounds={
            "cpu": Bounds(cpu_min_khz, cpu_max_khz),
            "gpu": Bounds(gpu_min_khz, gpu_max_khz),
        },
        lease_s=lease_s,
    )
    with recorded_defaults(clocks, socket_path.parent, boot_id()) as defaults:
        asyncio.run(run_agent(ClockAgent(defaults, settings), settings, announce=click.echo))
