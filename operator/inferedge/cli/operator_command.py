"""`inferedge operator`: run the Kubernetes operator (what the Helm chart's Deployment runs)."""

from __future__ import annotations

import random

import click


@click.command("operator")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Serve only this namespace (repeat for more; globs like 'team-*' work).",
)
@click.option(
    "-A", "--all-namespaces", is_flag=True, help="Serve every namespace (needs cluster RBAC)."
)
@click.option(
    "--peering",
    help="Coordinate with other replicas through this KopfPeering object (it must exist); "
    "the replica with the highest --priority works, the others stand by. "
    "[default: use the 'inferedge' peering object if it exists, else run alone]",
)
@click.option(
    "--standalone", is_flag=True, help="Never coordinate with other replicas (one replica only)."
)
@click.option(
    "--priority",
    type=click.IntRange(0, 2**31 - 1),
    help="This replica's peering priority [default: random, so two replicas never tie: "
    "equal priorities make all of them pause].",
)
@click.option(
    "--liveness",
    metavar="URL",
    help="Serve a liveness probe, e.g. http://0.0.0.0:8080/healthz.",
)
@click.option(
    "--runtime-image",
    help="Image for training, export, cloud and cloud-profiling pods "
    "[default: ghcr.io/inferedge/runtime:<version>].",
)
@click.option(
    "--edge-image",
    help="Image for edge pods and edge profiling (arm64/Jetson) "
    "[default: ghcr.io/inferedge/runtime-jetson:<version>].",
)
@click.option(
    "--runtime-image-tensorflow",
    help="Image for training, export, cloud and cloud-profiling pods of TensorFlow pipelines "
    "(spec.model.framework: tensorflow) [default: ghcr.io/inferedge/runtime-tensorflow:<version>].",
)
@click.option(
    "--edge-image-tensorflow",
    help="Image for edge pods and edge profiling of TensorFlow pipelines "
    "[default: ghcr.io/inferedge/runtime-tensorflow:<version>, built for arm64 too].",
)
@click.option(
    "--image-pull-policy",
    type=click.Choice(["Always", "IfNotPresent", "Never"]),
    default="IfNotPresent",
    show_default=True,
)
@click.option(
    "--tuning-interval",
    "tuning_interval_s",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="How often each edge pod's own reports are read (on its http port): GET /tuning into "
    "status.tuning when the edge DeviceProfile has spec.tuning, GET /adaptation into "
    "status.adaptation when the pipeline has spec.adaptation; and each site dispatcher's "
    "GET /distribution into status.pools[].measuredRate.",
)
@click.option(
    "--clock-agent-dir",
    default="/run/inferedge",
    show_default=True,
    metavar="NODE_DIR",
    help="The node directory the clock agent listens in (the chart's clockAgent.socketDir): "
    "edge pods that tune their clocks mount it where serve looks for the agent's socket.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log kopf's debug messages.")
def operator(
    *,
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    peering: str | None,
    standalone: bool,
    priority: int | None,
    liveness: str | None,
    runtime_image: str | None,
    edge_image: str | None,
    runtime_image_tensorflow: str | None,
    edge_image_tensorflow: str | None,
    image_pull_policy: str,
    tuning_interval_s: float,
    clock_agent_dir: str,
    verbose: bool,
) -> None:
    """Run the inferedge operator: reconcile InferencePipelines and DeviceProfiles until SIGTERM.

    It profiles models on each DeviceProfile's nodes, plans the split, trains and exports the
    exits with Jobs, and runs the edge and cloud Deployments (see docs/controller.md).
    """
    if namespaces and all_namespaces:
        raise click.UsageError("give --namespace or --all-namespaces, not both")
    if not namespaces and not all_namespaces:
        raise click.UsageError("give --namespace NS (repeatable) or --all-namespaces")
    if peering and standalone:
        raise click.UsageError("give --peering or --standalone, not both")
    if not clock_agent_dir.startswith("/") or "\n" in clock_agent_dir:
        raise click.UsageError(
            f"--clock-agent-dir: expected an absolute path, got {clock_agent_dir!r}"
        )

    import logging

    import kopf

    import inferedge.controller.handlers  # noqa: F401  (registers the handlers)
    from inferedge.controller.pods import Images
    from inferedge.controller.settings import DEFAULT_PEERING, OperatorOptions

    defaults = Images()
    options = OperatorOptions(
        images=Images(
            runtime=runtime_image or defaults.runtime,
            edge=edge_image or defaults.edge,
            runtime_tensorflow=runtime_image_tensorflow or defaults.runtime_tensorflow,
            edge_tensorflow=edge_image_tensorflow or defaults.edge_tensorflow,
            pull_policy=image_pull_policy,
        ),
        auto_peering=None if (peering or standalone) else DEFAULT_PEERING,
        tuning_interval_s=tuning_interval_s,
        clock_agent_dir=clock_agent_dir,
    )
    if priority is None and not standalone:
        priority = random.SystemRandom().randrange(1, 2**31 - 1)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
    )
    kopf.run(
        clusterwide=all_namespaces,
        namespaces=namespaces,
        standalone=True if standalone else None,
        peering_name=peering,
        priority=priority,
        liveness_endpoint=liveness,
        memo=kopf.Memo(options=options),
    )
