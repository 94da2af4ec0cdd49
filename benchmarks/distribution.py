"""A site of three emulated edge pools at three target rates: the distribution policy against
round robin, the fastest version, the most accurate version and a pipeline over the boards.

    python benchmarks/distribution.py [-f examples/collaborative-edge.yaml] [--seconds 15]
        [--out out/distribution] [--json]

Runs `inferedge run`'s site preparation once (every version trained, profiled on every pool's
class, served alone on each class and measured for the exploration table), then serves each
policy at each target for real: each pool's replicas and `inferedge dispatch` on an
authorizing nats-server, the test split sent to the dispatcher open loop at the target rate
(`inferedge.local.site_serving`). Then `ours` is served
once more at the lowest target while one replica of the pool with the most is killed halfway
(SIGKILL): the report gives the requests lost and refused, and when the shares were decided
again.

Policies (`inferedge.core.site_policies`): `ours` (the policy, `inferedge.core.distribution`),
`round_robin` (the most accurate version everywhere, equal shares), `fastest_version` and
`most_accurate` (that version everywhere, shares by speed), and `model_partition` (the most
accurate version cut into one stage per pool, a pipeline over the boards: each replica runs
its stage's cuts, the dispatcher carries each request's activation from stage to stage, and a
request leaves at the first confident exit; the order of the pools and the cuts are chosen
from the profiles, `core.site_policies.pipeline_over_pools`, whose predicted rate is printed
beside the measured one).

The targets are fractions (0.5, 0.7, 0.85) of what the site is planned to take with the most
accurate version on every pool (its capacity at the utilization bound): the range where
accuracy and speed both count. Requests leave on a Poisson schedule, so what is offered varies
by a few percent around the target; `offered` and `throughput` are the requests sent and the
answers received a second in the steady window (after the first 2 s, which fill the replicas'
queues, until the last request leaves): a site that keeps up answers what is offered, one that
cannot answers what it manages. A target is met when the throughput is at least 95 % of what
was offered and no request was lost.
Every figure is EMULATED (compute slowdowns on one machine); this script reports, it never
fails a test run on its figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from inferedge.api.documents import parse_documents
from inferedge.api.site import SiteStage
from inferedge.core.distribution import distribute
from inferedge.core.site_choice import pool_versions
from inferedge.core.site_policies import (
    PipelinePlan,
    fastest_version,
    most_accurate_version,
    pipeline_over_pools,
)
from inferedge.local.site import PreparedSite, prepare_site
from inferedge.local.site_serving import ServedSite, SiteSettings, serve_policy

FRACTIONS = (0.5, 0.7, 0.85)
MET_SHARE = 0.95


class _Lines:
    """Progress as plain lines on stderr (stdout carries the table or the JSON)."""

    def info(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def progress(self, title: str) -> Any:
        from contextlib import nullcontext

        print(title, file=sys.stderr, flush=True)
        return nullcontext(lambda done, total: None)


def _figures(served: ServedSite) -> dict[str, Any]:
    replay = served.replay
    return {
        "versions": served.versions,
        "offered": round(replay.offered, 2),
        "throughput": round(replay.throughput, 2),
        "accuracy": round(replay.accuracy, 4),
        "met": replay.throughput >= MET_SHARE * replay.offered and replay.lost == 0,
        "lost": replay.lost,
        "refused": replay.refused,
        "sent": replay.sent,
    }


def _serve_all(site: PreparedSite, rate: float, settings: SiteSettings) -> dict[str, Any]:
    pools = site.policy_pools()
    spec = site.pipeline.spec
    target = spec.distribution
    assert target is not None
    ours = distribute(
        pools, rate, min_accuracy=target.min_accuracy, max_utilization=target.max_utilization
    )
    fastest, accurate = fastest_version(pools), most_accurate_version(pools)
    every = {p.name for p in site.pools}
    choices: dict[str, tuple[dict[str, str], dict[str, float] | None]] = {
        "ours": (pool_versions(pools, ours, target.min_accuracy), None),
        "round_robin": (dict.fromkeys(every, accurate), dict.fromkeys(every, 1.0)),
        "fastest_version": (dict.fromkeys(every, fastest), None),
        "most_accurate": (dict.fromkeys(every, accurate), None),
    }
    out: dict[str, Any] = {}
    for name, (versions, fixed) in choices.items():
        served = serve_policy(
            site, name, versions, rate, reporter=_Lines(), settings=settings, fixed_shares=fixed
        )
        out[name] = _figures(served)
    plan, stages = _pipeline(site, accurate)
    served = serve_policy(
        site, "model_partition", dict.fromkeys(every, accurate), rate, reporter=_Lines(),
        settings=settings, stages=stages,
    )  # fmt: skip
    out["model_partition"] = {
        **_figures(served),
        "predicted_rate": round(plan.rate, 2),
        "stages": [s.model_dump() for s in stages],
        "stage_ms": [round(t, 2) for t in plan.stage_ms],
        "reach": [round(r, 4) for r in plan.reach],
    }
    return out


def _pipeline(site: PreparedSite, version: str) -> tuple[PipelinePlan, list[SiteStage]]:
    """The best pipeline of `version` over the site's pools: the stages start and end where
    its served steps do (its exits and the model's ends), and its exits keep answering."""
    prepared = site.versions[version]
    steps = prepared.manifest.edge
    boundaries = [s.start for s in steps] + [steps[-1].end]
    exits = sorted(e.cut_index for e in prepared.plan.exits)
    shares = prepared.evaluation.chosen().exit_shares
    plan = pipeline_over_pools(
        [_profile(site, pool.name, version) for pool in site.pools],
        [p.replicas for p in site.pools],
        boundaries,
        dict(zip(exits, shares[: len(exits)], strict=True)),
    )
    stages = [
        SiteStage(pool=site.pools[i].name, start=a, end=b)
        for i, (a, b) in zip(plan.pools, plan.stages, strict=True)
    ]
    return plan, stages


def _profile(site: PreparedSite, pool: str, version: str) -> Any:
    from inferedge.core.profile import parse_profile

    prepared = site.versions[version]
    device = site.devices[pool].metadata.name
    reference = site.pipeline.spec.edge.reference.profile
    if device == reference:
        return prepared.edge
    path = prepared.out / f"edge-profile-{device}.json"
    return parse_profile(path.read_text(encoding="utf-8"), str(path))


def _table(result: dict[str, Any]) -> str:
    lines = [
        "EMULATED site (compute slowdowns on one machine)",
        f"{'target/s':>9} {'policy':<16} {'answered/s':>10} {'accuracy':>9} {'met':>4} "
        f"{'lost':>5} {'refused':>7}",
    ]
    for target in result["targets"]:
        for name, f in target["policies"].items():
            mark = f" (predicted {f['predicted_rate']:.1f}/s)" if "predicted_rate" in f else ""
            lines.append(
                f"{target['rate']:>9.1f} {name:<16} {f['throughput']:>10.1f} "
                f"{f['accuracy']:>9.2%} {'yes' if f['met'] else 'no':>4} {f['lost']:>5} "
                f"{f.get('refused', 0):>7}{mark}"
            )
    kill = result["kill"]
    lines.append(
        f"kill {kill['replica']} at {kill['at_s']:g} s of {kill['seconds']:g} s "
        f"({kill['rate']:.1f}/s): lost {kill['lost']}, refused {kill['refused']}, "
        f"shares decided again {kill['rebalanced_after_s']} s after the kill"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Prepare the site, serve every policy at every target, kill a replica, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", "--file", type=Path, default=Path("examples/collaborative-edge.yaml"))
    parser.add_argument("--out", type=Path, default=Path("out/distribution"))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--measure-seconds", type=float, default=8.0,
        help="each (class, version) served alone and measured for the table (0: profiles only)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    source = str(args.file)
    docs = parse_documents(args.file.read_text(encoding="utf-8"), source)
    (pipeline,) = docs.pipelines
    site = prepare_site(
        docs, pipeline, args.out, _Lines(), source, threads=args.threads,
        measure_s=args.measure_seconds,
    )  # fmt: skip
    spec = pipeline.spec.distribution
    assert spec is not None
    pools = site.policy_pools()
    accurate = most_accurate_version(pools)
    most = sum(p.capacity(accurate, spec.max_utilization) for p in pools)
    settings = SiteSettings(seconds=args.seconds, threads=args.threads)
    targets: list[dict[str, Any]] = []
    for fraction in FRACTIONS:
        rate = round(fraction * most, 1)
        targets.append({"rate": rate, "policies": _serve_all(site, rate, settings)})
    # The lowest target: what the site still takes when one replica is gone.
    kill_rate = float(targets[0]["rate"])
    ours = distribute(
        site.policy_pools(), kill_rate, min_accuracy=spec.min_accuracy,
        max_utilization=spec.max_utilization,
    )  # fmt: skip
    at = args.seconds / 2
    killed = serve_policy(
        site, "ours-kill", pool_versions(site.policy_pools(), ours, spec.min_accuracy), kill_rate,
        reporter=_Lines(),
        settings=SiteSettings(seconds=args.seconds, threads=args.threads, kill_at_s=at),
    )  # fmt: skip
    when = killed.killed_unix or 0.0
    after = [
        d.at_unix - when
        for d in killed.status.decisions
        if "replicas" in d.cause and d.at_unix >= when
    ]
    result = {
        "emulated": True,
        "accurate_capacity": round(most, 2),
        "table": [vars(r) for r in site.table],
        "targets": targets,
        "kill": {
            "replica": killed.killed,
            "rate": kill_rate,
            "seconds": args.seconds,
            "at_s": at,
            "lost": killed.replay.lost,
            "refused": killed.replay.refused,
            "answered": killed.replay.answered,
            "sent": killed.replay.sent,
            "decisions": [d.model_dump(mode="json") for d in killed.status.decisions],
            "rebalanced_after_s": round(min(after), 2) if after else None,
        },
    }
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
