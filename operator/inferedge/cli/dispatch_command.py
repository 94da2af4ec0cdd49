"""`inferedge dispatch`: serve a site's dispatcher over several edge pools (what its pod runs)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from inferedge.cli.params import host_option, nats_url_option


@click.command()
@click.option(
    "--site",
    "site_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="INFEREDGE_SITE",
    help="The site file: pools, the version each serves with its exploration-table row, and "
    "the target rate (the operator's ConfigMap, or `inferedge run`'s site.json) "
    "[env: INFEREDGE_SITE].",
)
@nats_url_option
@host_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="HTTP port (0: any free one, announced).",
)
def dispatch(*, site_file: Path, nats_url: str | None, host: str, port: int) -> None:
    """Serve the OIP v2 API of a site of several edge pools until SIGTERM or Ctrl-C.

    Each request goes to one replica of one pool, by the shares the resource manager decides
    from the site file and from the replicas' heartbeats; a replica that is busy, silent or
    gone has its requests sent to another. `GET /distribution` shows the shares and every
    decision of them; /metrics the counts.
    """
    from inferedge.api.site import parse_site
    from inferedge.runtime.dispatcher_http import serve_site

    config = parse_site(site_file.read_bytes(), str(site_file))
    asyncio.run(serve_site(config, nats_url, host, port, click.echo))
