"""A local site served for real: a broker, each pool's replicas, the dispatcher, a paced replay.

Every replica is `inferedge serve edge --pool P --replica P-i` on its version's artifact set,
emulating its pool's DeviceProfile (compute slowdown, holding by sleeping: several emulated
boards share this machine's cores, which real boards would not); the dispatcher is `inferedge
dispatch` on a site file written from the exploration table; each signs in to an authorizing
nats-server as its own identity, as in a cluster. The test split is then sent to the dispatcher
at a rate (`local.site_replay`), optionally killing one replica partway, and the dispatcher's
own account (`GET /distribution`) is read back. Served as a pipeline over the pools, each
replica is one stage (`--stage`) and the dispatcher carries each request through them.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from inferedge.api.site import SiteConfig, SitePool, SiteStage, SiteStatus
from inferedge.core.errors import InferedgeError
from inferedge.local.interruptible import run_interruptible
from inferedge.local.processes import ServerProcess, running
from inferedge.local.runner import thread_env
from inferedge.local.serving import broker_and_servers
from inferedge.local.site import PreparedSite
from inferedge.local.site_measure import replica_args
from inferedge.local.site_replay import SiteReplay, site_replay
from inferedge.steps.reporting import Reporter

MIB = 1024 * 1024


@dataclass(frozen=True)
class SiteSettings:
    """How the site is served and replayed."""

    seconds: float = 20.0
    threads: int = 1
    queue_limit: int = 4
    start_timeout_s: float = 180.0
    kill_at_s: float | None = None
    """Kill one replica (SIGKILL) this far into the replay: the pool with the most replicas,
    its first."""


@dataclass(frozen=True)
class ServedSite:
    """One policy served at one rate: the replay, the dispatcher's account, the kill."""

    policy: str
    versions: dict[str, str]
    replay: SiteReplay
    status: SiteStatus
    killed: str | None
    killed_unix: float | None
    """When the replica was killed (Unix seconds)."""


def site_config(
    site: PreparedSite,
    versions: Mapping[str, str],
    rate: float,
    *,
    queue_limit: int,
    fixed_shares: Mapping[str, float] | None = None,
    stages: Sequence[SiteStage] | None = None,
) -> SiteConfig:
    """The dispatcher's site file: each pool's version and its table row, the target; with
    `stages`, the pipeline over the pools of the one version every pool serves."""
    plan = None
    if stages is not None:
        (version,) = set(versions.values())
        plan = site.versions[version].plan.hash
    spec = site.pipeline.spec
    target = spec.distribution
    return SiteConfig(
        namespace=site.pipeline.metadata.namespace,
        pipeline=site.pipeline.metadata.name,
        input_shape=spec.model.input_shape,
        target_rate=rate,
        min_accuracy=target.min_accuracy if target else 0.0,
        max_utilization=target.max_utilization if target else 0.9,
        drift_bound=target.drift_bound if target else 0.2,
        pools=tuple(
            SitePool(
                name=pool.name,
                version=versions[pool.name],
                replicas=pool.replicas,
                throughput=site.row(pool.name, versions[pool.name]).throughput,
                accuracy=site.row(pool.name, versions[pool.name]).accuracy,
                queue_limit=queue_limit,
            )
            for pool in site.pools
        ),
        fixed_shares=dict(fixed_shares) if fixed_shares is not None else None,
        stages=tuple(stages) if stages is not None else None,
        stage_plan=plan,
    )


def read_status(url: str) -> SiteStatus:
    """The dispatcher's `GET /distribution`, validated."""
    with urllib.request.urlopen(f"{url}/distribution", timeout=30) as response:
        return SiteStatus.model_validate_json(response.read())


def _wait_for_replicas(url: str, expected: Mapping[str, int], timeout_s: float) -> None:
    """Until the dispatcher has heard every replica (each beats twice a second)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = read_status(url)
        if all(p.replicas == expected[p.name] for p in status.pools):
            return
        time.sleep(0.1)  # polling the dispatcher's own account, not standing in for it
    raise InferedgeError(f"the dispatcher did not hear every replica within {timeout_s:g} s")


def serve_policy(
    site: PreparedSite,
    policy: str,
    versions: Mapping[str, str],
    rate: float,
    *,
    reporter: Reporter,
    settings: SiteSettings,
    fixed_shares: Mapping[str, float] | None = None,
    stages: Sequence[SiteStage] | None = None,
) -> ServedSite:
    """Serve the site with `versions` per pool (with `stages`, as a pipeline over the pools),
    replay at `rate`, and stop everything."""
    meta = site.pipeline.metadata
    logs = site.out / "logs" / "site" / f"{policy}-{rate:g}"
    config = site_config(
        site, versions, rate, queue_limit=settings.queue_limit, fixed_shares=fixed_shares,
        stages=stages,
    )  # fmt: skip
    stage_of = {s.pool: s for s in stages or ()}
    site_file = logs / "site.json"
    logs.mkdir(parents=True, exist_ok=True)
    site_file.write_text(config.model_dump_json(by_alias=True, indent=2) + "\n")
    test = next(iter(site.versions.values())).splits.test
    with broker_and_servers(
        meta.namespace, meta.name, {}, logs, env=thread_env(settings.threads),
        max_payload=8 * MIB, start_timeout_s=settings.start_timeout_s,
    ) as bus:  # fmt: skip
        replicas: list[ServerProcess] = []
        for pool in site.pools:
            prepared = site.versions[versions[pool.name]]
            slowdown = site.devices[pool.name].spec.emulation.slowdown
            for i in range(pool.replicas):
                name = f"{pool.name}-{i}"
                answer_at = site.truncations.get(versions[pool.name])
                cache = site.out / "cache"
                args = replica_args(
                    prepared, slowdown, pool=pool.name, name=name, cache=cache,
                    answer_at=answer_at, stage=stage_of.get(pool.name),
                )  # fmt: skip
                replicas.append(bus.server("edge", args, logs / f"{name}.log"))
        dispatcher = bus.server(
            "dispatcher", ["--site", str(site_file), "--port", "0"], logs / "dispatcher.log"
        )
        with running([*replicas, dispatcher]) as started:
            url = started[-1].url
            _wait_for_replicas(url, {p.name: p.replicas for p in site.pools}, 60.0)
            victim = _victim(site, replicas) if settings.kill_at_s is not None else None
            kill = None
            killed_at: list[float] = []
            if victim is not None and settings.kill_at_s is not None:
                kill = (settings.kill_at_s, lambda: killed_at.append(_kill(victim)))
            title = f"{policy}: {rate:g} requests/s for {settings.seconds:g} s"
            with reporter.progress(title) as bar:
                replay = run_interruptible(
                    lambda: site_replay(
                        url, meta.name, test, rate, settings.seconds, at_s=kill, progress=bar
                    )
                )
            status = read_status(url)
    reporter.info(
        f"{policy} at {rate:g}/s: {replay.throughput:.1f} answered/s, accuracy "
        f"{replay.accuracy:.2%}, refused {replay.refused}, lost {replay.lost}"
    )
    (logs / "status.json").write_text(json.dumps(status.model_dump(mode="json"), indent=2))
    return ServedSite(
        policy,
        dict(versions),
        replay,
        status,
        victim.log_path.stem if victim else None,
        killed_at[0] if killed_at else None,
    )


def _victim(site: PreparedSite, replicas: list[ServerProcess]) -> ServerProcess:
    largest = max(site.pools, key=lambda p: p.replicas).name
    return next(r for r in replicas if r.log_path.stem == f"{largest}-0")


def _kill(victim: ServerProcess) -> float:
    """SIGKILL `victim`; when it was sent (Unix seconds)."""
    if victim.pid is not None:
        os.kill(victim.pid, signal.SIGKILL)
    return time.time()
