"""A site's decision in the operator (spec.distribution), pure: the table's versions, each
pool's version and share, the dispatcher's file, and the status with its cause (issue #15)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from inferedge.api.convert import pipeline_plan
from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.api.pipeline_status import DistributionStatus, PoolStatus
from inferedge.api.site import parse_site
from inferedge.controller import site_plan
from inferedge.core.distribution import DistributionError, Pool, VersionFigures, distribute
from inferedge.core.manifest import Calibration
from inferedge.core.plan import Plan
from inferedge.core.profile import MeasuredProfile
from inferedge.core.site_choice import policy_pools, pool_versions
from inferedge.core.synthetic import synthetic_profile

# A site of three boards, as examples/collaborative-edge.yaml describes one (kept here, so
# that the example may change without changing what these tests check).
SITE = """
apiVersion: inferedge.io/v1alpha1
kind: DeviceProfile
metadata: {name: jetson-nano}
spec: {role: edge, nodeSelector: {inferedge.io/device: jetson-nano}}
---
apiVersion: inferedge.io/v1alpha1
kind: DeviceProfile
metadata: {name: odroid-xu4}
spec: {role: edge, nodeSelector: {inferedge.io/device: odroid-xu4}}
---
apiVersion: inferedge.io/v1alpha1
kind: DeviceProfile
metadata: {name: raspberry-pi4}
spec: {role: edge, nodeSelector: {inferedge.io/device: raspberry-pi4}}
---
apiVersion: inferedge.io/v1alpha1
kind: DeviceProfile
metadata: {name: cloud-cpu}
spec: {role: cloud, nodeSelector: {kubernetes.io/arch: amd64}}
---
apiVersion: inferedge.io/v1alpha1
kind: InferencePipeline
metadata: {name: collaborative}
spec:
  model:
    name: resnet18
    inputShape: [3, 16, 16]
    versions: [{name: resnet18, exit: 1}, {name: resnet18, exit: 2}]
  dataset: {name: digits}
  edge:
    pools:
      - {name: nano, profile: jetson-nano, replicas: 1}
      - {name: xu4, profile: odroid-xu4, replicas: 1}
      - {name: pi4, profile: raspberry-pi4, replicas: 1}
  cloud: {profile: cloud-cpu, replicas: 1}
  partitioning: {strategy: memory, memoryFraction: 1.0}
  exits: {placement: pareto, edge: 2, cloud: 0}
  distribution: {targetRate: 60, minAccuracy: 0.9}
  storage: {uri: s3://inferedge-artifacts}
  messaging: {natsUrl: nats://nats.inferedge:4222}
"""


def site_documents() -> list[dict[str, Any]]:
    """The site's objects, as `kubectl apply` would take them."""
    return [d for d in yaml.safe_load_all(SITE) if d]


# ms per GFLOP of each class's synthetic profile: the Nano is the fastest board.
SPEEDS = {"jetson-nano": 60.0, "odroid-xu4": 120.0, "raspberry-pi4": 160.0, "cloud-cpu": 6.0}
NOW = "2026-03-01T12:00:00Z"


def site_example(**changes: Any) -> tuple[dict[str, DeviceProfileSpec], InferencePipelineSpec]:
    """The example site's DeviceProfiles (by name) and pipeline spec, its spec updated."""
    docs = site_documents()
    devices = {
        d["metadata"]["name"]: DeviceProfileSpec.model_validate(d["spec"])
        for d in docs
        if d["kind"] == "DeviceProfile"
    }
    (pipeline,) = (d for d in docs if d["kind"] == "InferencePipeline")
    return devices, InferencePipelineSpec.model_validate({**pipeline["spec"], **changes})


def with_versions(spec: InferencePipelineSpec, *names: str) -> InferencePipelineSpec:
    """`spec` with other zoo models added to its versions."""
    model = spec.model.model_dump(by_alias=True)
    model["versions"] = [*model["versions"], *({"name": n} for n in names)]
    return InferencePipelineSpec.model_validate({**spec.model_dump(by_alias=True), "model": model})


def profiles() -> dict[str, MeasuredProfile]:
    return {
        name: synthetic_profile(12, seed=7, ms_per_gflop=speed, device_name=name)
        for name, speed in SPEEDS.items()
    }


def planned(spec: InferencePipelineSpec, devices: dict[str, DeviceProfileSpec]) -> Plan:
    measured = profiles()
    reference = spec.edge.reference.profile
    return pipeline_plan(spec, devices[reference], measured[reference], measured["cloud-cpu"])


def calibration(plan: Plan, accuracy: float = 0.95) -> Calibration:
    return Calibration(
        threshold=0.8,
        split="test",
        accuracy=accuracy,
        exit_accuracy={e.cut_index: 0.9 for e in plan.exits},
        expected_latency_ms=plan.final_latency_ms / 2,
        offload_rate=0.0,
    )


def decided(**changes: Any) -> tuple[InferencePipelineSpec, site_plan.SiteDecision]:
    devices, spec = site_example(**changes)
    plan = planned(spec, devices)
    classes = {k: v for k, v in profiles().items() if k != "cloud-cpu"}
    return spec, site_plan.decide_site(spec, classes, plan, calibration(plan))


def test_the_table_has_the_model_and_its_truncations_and_names_the_rest() -> None:
    devices, spec = site_example()
    spec = with_versions(spec, "mobilenet_v2")
    plan = planned(spec, devices)
    served, left_out = site_plan.table_versions(spec, plan, calibration(plan))
    assert [(v.label, v.answer_at) for v in served] == [
        ("resnet18", None),
        ("resnet18-exit1", 1),
        ("resnet18-exit2", 2),
    ]
    assert left_out == (site_plan.LeftOut("mobilenet_v2", site_plan.NOT_BUILT),)
    # Truncated versions answer earlier: each serves a smaller share of the model's time.
    assert served[1].share < served[2].share <= 1.0


def test_each_pool_gets_a_version_and_a_share_from_its_own_class_s_profile() -> None:
    spec, decision = decided()
    assert [p.name for p in decision.pools] == ["nano", "xu4", "pi4"]
    assert [p.profile for p in decision.pools] == ["jetson-nano", "odroid-xu4", "raspberry-pi4"]
    # One row per (class, version), each class its own figures: the Nano is the fastest.
    assert {(r.device, r.version) for r in decision.table} == {
        (c, v)
        for c in ("jetson-nano", "odroid-xu4", "raspberry-pi4")
        for v in ("resnet18", "resnet18-exit1", "resnet18-exit2")
    }
    rows = {(r.device, r.version): r.throughput for r in decision.table}
    assert rows["jetson-nano", "resnet18"] > rows["odroid-xu4", "resnet18"]
    assert rows["odroid-xu4", "resnet18"] > rows["raspberry-pi4", "resnet18"]
    d = decision.distribution
    assert d.target == 60
    assert sum(p.share for p in decision.pools) == pytest.approx(1.0)
    for pool in decision.pools:
        row = next(
            r for r in decision.table if (r.device, r.version) == (pool.profile, pool.version)
        )
        assert (pool.throughput, pool.accuracy) == (row.throughput, row.accuracy)
        assert pool.answer_at == (None if pool.version == "resnet18" else int(pool.version[-1]))
    # The same as the policy decides from the same table.
    again = distribute(
        policy_pools(spec.edge.resolved_pools(), decision.table),
        60,
        min_accuracy=0.9,
        max_utilization=0.9,
    )
    assert again == d


def test_a_pool_without_a_share_serves_its_fastest_good_enough_version() -> None:
    figures = {"big": VersionFigures(10, 0.95), "small": VersionFigures(40, 0.80),
               "mid": VersionFigures(20, 0.90)}  # fmt: skip
    pools = [Pool("a", 2, figures), Pool("b", 1, figures)]
    low = distribute(pools, 1.0, min_accuracy=0.85)
    assert {a.pool for a in low.assignments} == {"a", "b"}  # equal accuracy spreads the load
    one = distribute([pools[0], Pool("b", 0, figures)], 1.0, min_accuracy=0.85)
    assert pool_versions([pools[0], Pool("b", 0, figures)], one, 0.85) == {
        "a": "big",
        "b": "mid",  # the fastest of accuracy >= 0.85
    }
    none = distribute([Pool("b", 0, figures)], 1.0)
    assert pool_versions([Pool("b", 0, figures)], none, 0.99) == {"b": "small"}


def test_a_pool_whose_class_has_no_profile_is_refused_in_one_line() -> None:
    devices, spec = site_example()
    plan = planned(spec, devices)
    classes = {"jetson-nano": profiles()["jetson-nano"]}
    with pytest.raises(DistributionError, match="no profile of the model on odroid-xu4, "):
        site_plan.decide_site(spec, classes, plan, calibration(plan))


def test_the_site_file_is_what_the_dispatcher_reads() -> None:
    spec, decision = decided()
    config = site_plan.site_config("team-a", "collaborative", spec, decision)
    parsed = parse_site(site_plan.site_json(config), "site.json")
    assert parsed == config
    assert (parsed.namespace, parsed.pipeline, parsed.target_rate) == (
        "team-a",
        "collaborative",
        60,
    )
    assert parsed.min_accuracy == 0.9
    assert parsed.input_shape == (3, 16, 16)
    assert [(p.name, p.version, p.replicas) for p in parsed.pools] == [
        (p.name, p.version, p.replicas) for p in decision.pools
    ]
    # Same decision, same file: the dispatcher rolls only when the decision changes.
    assert site_plan.site_json(config) == site_plan.site_json(
        site_plan.site_config("team-a", "collaborative", *decided())
    )


def _status(
    spec: InferencePipelineSpec,
    decision: site_plan.SiteDecision,
    before: tuple[tuple[PoolStatus, ...], DistributionStatus | None] = ((), None),
    now: str = NOW,
) -> tuple[tuple[PoolStatus, ...], DistributionStatus]:
    pools = site_plan.pool_statuses(decision, {"nano": 1})
    return pools, site_plan.distribution_status(
        spec, decision, pools, before_pools=before[0], before=before[1], now=now
    )


def test_the_status_says_what_was_decided_and_why() -> None:
    spec, decision = decided()
    pools, distribution = _status(spec, decision)
    assert [(p.name, p.ready_replicas) for p in pools] == [("nano", 1), ("xu4", None),
                                                           ("pi4", None)]  # fmt: skip
    assert distribution.cause == "start"
    assert distribution.decided_at == NOW
    assert distribution.target_rate == 60
    assert distribution.planned_rate == pytest.approx(decision.distribution.rate)
    assert distribution.met == decision.distribution.met
    # Nothing changed: the cause and time of the decision in effect stay.
    later = "2026-03-01T13:00:00Z"
    _, same = _status(spec, decision, (pools, distribution), later)
    assert (same.cause, same.decided_at) == ("start", NOW)
    # Live readiness is not a new decision either.
    ready = tuple(p.model_copy(update={"ready_replicas": 1}) for p in pools)
    assert _status(spec, decision, (ready, distribution), later)[1].decided_at == NOW


def test_a_target_or_replicas_change_is_a_new_decision_with_its_cause() -> None:
    spec, decision = decided()
    before = _status(spec, decision)
    distribution = {**spec.model_dump(by_alias=True)["distribution"], "targetRate": 20}
    faster_spec, faster = decided(distribution=distribution)
    _, new = _status(faster_spec, faster, before, "2026-03-01T13:00:00Z")
    assert new.cause == "target changed: 60 -> 20 requests/s"
    assert new.decided_at == "2026-03-01T13:00:00Z"
    pools = [p.model_dump(by_alias=True) for p in spec.edge.resolved_pools()]
    pools[1]["replicas"] = 3
    scaled_spec, scaled = decided(edge={"pools": pools})
    _, new = _status(scaled_spec, scaled, before, "2026-03-01T13:00:00Z")
    assert new.cause == "pool xu4: 1 -> 3 replicas"
    assert scaled.pool("xu4").replicas == 3


def test_a_target_out_of_reach_says_so() -> None:
    distribution = {"targetRate": 1e6, "minAccuracy": 0.9}
    spec, decision = decided(distribution=distribution)
    _, status = _status(spec, decision)
    assert status.met is False
    assert "exceeds the site's" in (status.reason or "")
    condition = site_plan.site_condition(decision, 3, NOW)
    assert (condition.status, condition.reason) == ("False", "TargetNotMet")
    assert condition.observed_generation == 3


def test_the_condition_names_the_versions_left_out() -> None:
    devices, spec = site_example()
    spec = with_versions(spec, "mobilenet_v2", "resnet50")
    plan = planned(spec, devices)
    classes = {k: v for k, v in profiles().items() if k != "cloud-cpu"}
    decision = site_plan.decide_site(spec, classes, plan, calibration(plan))
    condition = site_plan.site_condition(decision, 1, NOW)
    assert (condition.status, condition.reason) == ("True", "TargetMet")
    assert condition.message.endswith(
        f"versions left out: mobilenet_v2 ({site_plan.NOT_BUILT}); resnet50 ({site_plan.NOT_BUILT})"
    )
    waiting = site_plan.site_condition(None, 1, NOW)
    assert (waiting.status, waiting.reason) == ("False", "WaitingForArtifacts")


def test_pools_added_or_removed_are_a_cause_too() -> None:
    spec, decision = decided()
    pools, distribution = _status(spec, decision)
    fewer = [p.model_dump(by_alias=True) for p in spec.edge.resolved_pools()[:2]]
    fewer.append({"name": "nx", "profile": "jetson-nano"})
    other_spec, other = decided(edge={"pools": fewer})
    _, new = _status(other_spec, other, (pools, distribution))
    assert new.cause == "pools changed: +nx -pi4"
    assert site_plan.decision_cause(pools, distribution, pools, distribution) is None
