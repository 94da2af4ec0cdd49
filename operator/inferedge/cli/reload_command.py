"""`inferedge reload`: switch a pipeline's running servers to another plan or c_thr, live."""

from __future__ import annotations

import asyncio

import click


@click.command()
@click.option("--namespace", default="default", show_default=True)
@click.option("--pipeline", required=True, help="Pipeline name (a DNS-1123 label).")
@click.option(
    "--prefix",
    help="Artifact set to serve from now on: <namespace>/<pipeline>/<plan-hash>/<set-id>.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(min=0),
    help="New c_thr; above 1 disables early exits.",
)
@click.option(
    "--nats-url",
    envvar="INFEREDGE_NATS_URL",
    help="NATS server(s); credentials from INFEREDGE_NATS_* [env: INFEREDGE_NATS_URL].",
)
@click.option(
    "--cloud-replicas",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Cloud servers that must acknowledge before the edges are told.",
)
@click.option(
    "--edge-replicas",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Edge servers that must acknowledge.",
)
@click.option("--timeout-s", type=click.FloatRange(min=0, min_open=True), default=60.0)
def reload(
    *,
    namespace: str,
    pipeline: str,
    prefix: str | None,
    threshold: float | None,
    nats_url: str | None,
    cloud_replicas: int,
    edge_replicas: int,
    timeout_s: float,
) -> None:
    """Reload a pipeline's servers: the cloud replicas first, then the edges.

    A new --prefix is downloaded and verified by every server before it takes over; requests in
    flight finish on the plan they started with, and the cloud still answers the old plan's
    offloads until the edges have switched. --threshold alone is a config change, no download.
    """
    if prefix is None and threshold is None:
        raise click.UsageError("give --prefix, --threshold, or both")
    from inferedge.transport.client import Messenger
    from inferedge.transport.control import reload_pipeline

    async def go() -> None:
        async with await Messenger.connect(nats_url, name="inferedge-reload") as messenger:
            acks = await reload_pipeline(
                messenger,
                namespace,
                pipeline,
                prefix=prefix,
                threshold=threshold,
                replicas={"cloud": cloud_replicas, "edge": edge_replicas},
                timeout_s=timeout_s,
            )
        for ack in acks:
            click.echo(f"{ack.role}: serving plan {ack.plan_hash} at c_thr {ack.threshold:g}")

    asyncio.run(go())
