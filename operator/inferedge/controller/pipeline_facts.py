"""Gathering one pipeline's facts, step by step, and the children it would need.

Each step is gathered only when the one before it is done (there is no plan to train before both
profiles exist). Alongside the facts goes `Desired`: the objects and store keys the actions of
the decision will use, built from the same inputs so facts and actions cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from inferedge.api import keys
from inferedge.api.convert import pipeline_plan
from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.api.pipeline_status import ArtifactRef, PlanSummary
from inferedge.controller import (
    builders,
    jobs,
    naming,
    pipeline_inputs,
    pods,
    site_builders,
    site_plan,
)
from inferedge.controller.cache import ObjectCache
from inferedge.controller.kube import CONFIG_MAPS, Kube
from inferedge.controller.observe import combined_rollout, job_facts, job_snapshot, rollout_facts
from inferedge.controller.stores import StoreFailure, Stores
from inferedge.controller.views import PipelineView
from inferedge.core.distribution import DistributionError
from inferedge.core.errors import InferedgeError
from inferedge.core.facts import (
    ArtifactFacts,
    Failure,
    PipelineFacts,
    PlanFacts,
    ProfileFacts,
    RolloutFacts,
    waits,
)
from inferedge.core.manifest import Manifest, artifact_prefix
from inferedge.core.plan import Plan
from inferedge.core.profile import MeasuredProfile
from inferedge.core.roles import Role
from inferedge.storage import ArtifactStore


@dataclass(frozen=True)
class Sources:
    """Where a pipeline's facts come from, the images its children run and the Secrets that
    sign its pods in to NATS."""

    objects: ObjectCache
    kube: Kube
    stores: Stores
    images: pods.Images
    nats_secrets: pods.NatsSecrets = field(default_factory=pods.NatsSecrets)
    clock_agent_dir: str = pods.CLOCK_AGENT_DIR
    """The node directory the clock agent listens in."""


@dataclass
class Desired:
    """What the decision's actions need, filled as far as the facts go."""

    pipeline: PipelineView
    spec: InferencePipelineSpec | None = None
    devices: dict[Role, tuple[str, DeviceProfileSpec]] = field(default_factory=dict)
    """The reference pool's DeviceProfile (the plan is made on it) and the cloud's."""
    classes: dict[str, DeviceProfileSpec] = field(default_factory=dict)
    """Every edge pool's DeviceProfile, by name, in the order of the pools."""
    edge_profiles: dict[str, MeasuredProfile] = field(default_factory=dict)
    """The model's profile on each of `classes`, once every one is recorded."""
    store: ArtifactStore | None = None
    plan: Plan | None = None
    plan_key: str = ""
    inputs: jobs.TrainingInputs | None = None
    config_map: dict[str, Any] | None = None
    edges: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The edge Deployment of each pool, by pool name."""
    cloud: dict[str, Any] | None = None
    service: dict[str, Any] | None = None
    site: site_plan.SiteDecision | None = None
    """spec.distribution: each pool's version and share, decided from the exported set."""
    site_config_map: dict[str, Any] | None = None
    dispatcher: dict[str, Any] | None = None
    dispatcher_service: dict[str, Any] | None = None
    summary: PlanSummary | None = None
    threshold: float | None = None
    offload_ratio: float | None = None
    artifacts: ArtifactRef | None = None


@dataclass(frozen=True)
class Gathered:
    """The facts for the lifecycle and what its actions would create.

    `facts.edge` is every pool's edge Deployment together, and with spec.distribution the
    dispatcher's too (the site serves when all of them do); `edge` is the pools' alone (for
    status.edge) and `pools` each pool's, by pool name."""

    facts: PipelineFacts
    desired: Desired
    edge: RolloutFacts | None = None
    pools: Mapping[str, RolloutFacts] = field(default_factory=dict)


def _rollout(
    objects: ObjectCache, namespace: str, name: str, built: dict[str, Any] | None
) -> RolloutFacts:
    want = builders.template_hash(built) if built is not None else None
    return rollout_facts(name, objects.deployment(namespace, name), want)


async def gather(sources: Sources, pipeline: PipelineView) -> Gathered:
    """Facts about `pipeline` (as read from the API) and its desired children."""
    namespace, name = pipeline.meta.key
    generation = pipeline.meta.generation or 0
    desired = Desired(pipeline=pipeline)
    facts = await _steps(sources, namespace, name, generation, desired)
    names, objects, spec = naming.PipelineNames(name), sources.objects, desired.spec
    if spec is None:  # nothing says which pools there are: the single form's Deployment
        pools = {"edge": _rollout(objects, namespace, names.edge, None)}
    else:
        pools = {
            pool.name: _rollout(
                objects,
                namespace,
                names.edge_of(spec.edge, pool.name),
                desired.edges.get(pool.name),
            )
            for pool in spec.edge.resolved_pools()
        }
    edge = combined_rollout(list(pools.values()))
    site = edge
    if spec is not None and spec.distribution is not None:
        dispatcher = _rollout(objects, namespace, names.dispatcher, desired.dispatcher)
        site = combined_rollout([*pools.values(), dispatcher])
    cloud = _rollout(objects, namespace, names.cloud, desired.cloud)
    facts = replace(facts, edge=site, cloud=cloud)
    return Gathered(facts=facts, desired=desired, edge=edge, pools=pools)


async def _steps(
    sources: Sources, namespace: str, pipeline: str, generation: int, desired: Desired
) -> PipelineFacts:
    spec, problem = pipeline_inputs.validated_spec(desired.pipeline)
    if problem is not None or spec is None:
        return PipelineFacts(generation, blocker=problem)
    desired.spec = spec
    for index, pool in enumerate(spec.edge.resolved_pools()):
        if pool.profile in desired.classes:
            continue
        field_name = pipeline_inputs.pool_field(spec, index)
        found = pipeline_inputs.device_profile(
            sources.objects, namespace, pool.profile, field_name, "edge"
        )
        if isinstance(found, Failure):
            return PipelineFacts(generation, blocker=found)
        desired.classes[pool.profile] = found[1]
    reference = spec.edge.reference.profile
    desired.devices["edge"] = (reference, desired.classes[reference])
    found = pipeline_inputs.cloud_profile(sources.objects, namespace, spec)
    if isinstance(found, Failure):
        return PipelineFacts(generation, blocker=found)
    desired.devices["cloud"] = found
    try:
        desired.store = await sources.stores.open(namespace, spec.storage)
        profiles = await _profiles(sources, namespace, spec, desired)
    except StoreFailure as exc:
        return PipelineFacts(generation, profiles=exc.failure)
    states = tuple(p for p, _ in profiles)
    loaded = [profile for _, profile in profiles]
    if any(p is None for p in loaded):
        return PipelineFacts(generation, profiles=states)
    *edges, cloud = loaded
    desired.edge_profiles = {
        name: profile for name, profile in zip(desired.classes, edges, strict=True) if profile
    }
    edge = desired.edge_profiles[reference]
    assert cloud is not None
    try:
        plan = pipeline_plan(spec, desired.devices["edge"][1], edge, cloud)
    except InferedgeError as exc:
        failure = waits(
            "PlanInfeasible",
            str(exc),
            "change spec.partitioning or spec.exits, or the DeviceProfiles' link",
        )
        return PipelineFacts(generation, profiles=states, plan=failure)
    desired.plan = plan
    desired.plan_key = keys.plan_store_key(namespace, pipeline, plan.hash)
    desired.summary = summarise(plan, space=spec.adaptation is not None)
    try:
        stored = await sources.stores.has(desired.store, desired.plan_key)
    except StoreFailure as exc:
        return PipelineFacts(generation, profiles=states, plan=exc.failure)
    plan_facts = PlanFacts(hash=plan.hash, summary=_describe(plan), stored=stored)
    if not stored:
        return PipelineFacts(generation, profiles=states, plan=plan_facts)
    return await _training(
        sources,
        namespace=namespace,
        pipeline=pipeline,
        generation=generation,
        desired=desired,
        states=states,
        plan_facts=plan_facts,
    )


def summarise(plan: Plan, *, space: bool) -> PlanSummary:
    """The plan in a few fields. An operating space's exits are its candidates, of which the
    edge serves a few at a time (`status.adaptation` says which): the summary counts them."""
    if space:
        return PlanSummary(
            hash=plan.hash,
            split=plan.split,
            split_name=plan.split_name,
            edge_exits=(),
            cloud_exits=(),
            candidates=len(plan.exits),
            predicted_latency_ms=plan.final_latency_ms,
        )
    return PlanSummary(
        hash=plan.hash,
        split=plan.split,
        split_name=plan.split_name,
        edge_exits=tuple(e.cut_index for e in plan.edge_exits()),
        cloud_exits=tuple(e.cut_index for e in plan.cloud_exits()),
        predicted_latency_ms=plan.final_latency_ms,
    )


def _describe(plan: Plan) -> str:
    edge = [e.cut_index for e in plan.edge_exits()]
    cloud = [e.cut_index for e in plan.cloud_exits()]
    return f"split after cut {plan.split} ({plan.split_name}), exits edge {edge} cloud {cloud}"


async def _profiles(
    sources: Sources, namespace: str, spec: InferencePipelineSpec, desired: Desired
) -> list[tuple[ProfileFacts, MeasuredProfile | None]]:
    """Each edge class's profile of the model (in the order of the pools), then the cloud's."""
    out: list[tuple[ProfileFacts, MeasuredProfile | None]] = []
    assert desired.store is not None
    classes: list[tuple[Role, str, DeviceProfileSpec]] = [
        *(("edge", name, device) for name, device in desired.classes.items()),
        ("cloud", *desired.devices["cloud"]),
    ]
    for role, name, device in classes:
        key = keys.profiling_key(spec, device)
        label = naming.profile_result_label(spec, key)
        view = sources.objects.device_profile((namespace, name))
        result = view.result(label) if view is not None else None
        if result is not None:
            store_key = keys.profile_store_key(namespace, name, key)
            profile = await sources.stores.profile(desired.store, store_key, result.profiled_at)
            out.append((ProfileFacts(role, name, "Ready"), profile))
            continue
        job_name = naming.profile_job_name(name, key)
        snapshot = job_snapshot(sources.objects.job(namespace, job_name))
        if snapshot.state == "Failed":
            message = f"Job {job_name} failed: {snapshot.message or 'no reason given'}"
            out.append((ProfileFacts(role, name, "Failed", message), None))
        elif snapshot.state in ("Active", "Succeeded"):
            out.append((ProfileFacts(role, name, "Running"), None))
        else:
            out.append((ProfileFacts(role, name, "Missing"), None))
    return out


async def _training(
    sources: Sources,
    *,
    namespace: str,
    pipeline: str,
    generation: int,
    desired: Desired,
    states: tuple[ProfileFacts, ...],
    plan_facts: PlanFacts,
) -> PipelineFacts:
    spec, plan, store = desired.spec, desired.plan, desired.store
    assert spec is not None
    assert plan is not None
    assert store is not None
    key = keys.training_key(spec, plan.hash)
    devices = desired.devices
    desired.inputs = jobs.TrainingInputs(
        training_key=key,
        plan_key=desired.plan_key,
        edge_profile_key=keys.profile_store_key(
            namespace, devices["edge"][0], keys.profiling_key(spec, devices["edge"][1])
        ),
        cloud_profile_key=keys.profile_store_key(
            namespace, devices["cloud"][0], keys.profiling_key(spec, devices["cloud"][1])
        ),
        output_prefix=keys.training_prefix(namespace, pipeline, key),
    )
    names = naming.PipelineNames(pipeline)
    training = job_facts(names.train(key), sources.objects.job(namespace, names.train(key)))
    export_job = sources.objects.job(namespace, names.export(key))
    export = job_facts(names.export(key), export_job)
    base = PipelineFacts(
        generation, profiles=states, plan=plan_facts, training=training, export=export
    )
    if training.state != "Succeeded" or export.state != "Succeeded":
        return base
    stamp = export_job.meta.uid if export_job is not None else ""
    output = desired.inputs.output_prefix
    try:
        identity = await sources.stores.identity(store, output, stamp)
        if identity is None or identity.plan_hash != plan.hash or identity.training != key:
            # The Jobs succeeded, so the set they named must be recorded: someone removed or
            # replaced the record.
            invalid = waits(
                "ArtifactsInvalid",
                f"{output}: no identity of a set trained for plan {plan.hash} "
                f"with training key {key}",
                "delete the training Job to train again",
            )
            return replace(base, artifacts=invalid)
        prefix = artifact_prefix(namespace, pipeline, plan.hash, identity.set_id)
        found = await sources.stores.manifest(store, prefix, stamp)
    except StoreFailure as exc:
        return replace(base, artifacts=exc.failure)
    artifacts = ArtifactFacts(prefix=prefix, committed=found is not None)
    if found is None:
        return replace(base, artifacts=artifacts)
    manifest, sha256 = found
    pinned = desired.pipeline.last_status.artifacts
    same_run = pinned is not None and (pinned.uri, pinned.export_run) == (
        f"{store.uri}/{prefix}",
        stamp,
    )
    if pinned is not None and same_run and pinned.manifest_sha256 != sha256:
        # The status pinned this set when its export run finished; a manifest that changed
        # since was written by someone else (a new export run pins afresh).
        invalid = waits(
            "ArtifactsInvalid",
            f"{prefix}: manifest sha256 {sha256[:12]}… is not the {pinned.manifest_sha256[:12]}… "
            "pinned when the set was exported",
            "delete the export Job to export again",
        )
        return replace(base, artifacts=invalid)
    calibration = manifest.calibration
    fixed = spec.inference.threshold
    desired.threshold = (
        fixed if fixed is not None else (calibration.threshold if calibration else None)
    )
    if calibration is not None and (fixed is None or fixed == calibration.threshold):
        desired.offload_ratio = calibration.offload_rate
    desired.artifacts = ArtifactRef(
        uri=f"{store.uri}/{prefix}",
        manifest_sha256=sha256,
        export_run=stamp,
        digests=manifest.digests(),
    )
    if spec.distribution is not None:
        decided = _decide_site(spec, desired, manifest)
        if isinstance(decided, Failure):
            return replace(base, artifacts=decided)
        desired.site = decided
    config_current = await _deploy_desired(sources, namespace, pipeline, desired, prefix)
    return replace(base, artifacts=artifacts, config_current=config_current)


def _decide_site(
    spec: InferencePipelineSpec, desired: Desired, manifest: Manifest
) -> site_plan.SiteDecision | Failure:
    """spec.distribution's decision from every pool class's profile and the exported set."""
    hint = "change spec.distribution or spec.model.versions, or delete the export Job"
    if manifest.calibration is None:
        text = "spec.distribution: the exported set has no calibration to tell its accuracy"
        return waits(site_plan.INVALID, text, hint)
    try:
        return site_plan.decide_site(
            spec, desired.edge_profiles, manifest.plan, manifest.calibration
        )
    except DistributionError as exc:
        return waits(site_plan.INVALID, f"spec.distribution: {exc}", hint)


async def _deploy_desired(
    sources: Sources, namespace: str, pipeline: str, desired: Desired, prefix: str
) -> bool:
    """Build the serving children; True when the ConfigMaps in the cluster are the desired."""
    spec, body, site = desired.spec, desired.pipeline.raw, desired.site
    assert spec is not None
    assert desired.artifacts is not None
    data = builders.runtime_config(
        spec, prefix, desired.artifacts.manifest_sha256, edge=desired.devices["edge"][1]
    )
    config_map = builders.build_config_map(owner=body, data=data)
    desired.config_map = config_map
    config_hash = builders.template_hash(config_map) or ""
    for pool in spec.edge.resolved_pools():
        desired.edges[pool.name] = builders.build_deployment(
            owner=body,
            role="edge",
            spec=spec,
            device=desired.classes[pool.profile],
            config_hash=config_hash,
            images=sources.images,
            nats_secrets=sources.nats_secrets,
            clock_agent_dir=sources.clock_agent_dir,
            pool=pool,
            answer_at=site.pool(pool.name).answer_at if site is not None else None,
        )
    desired.cloud = builders.build_deployment(
        owner=body,
        role="cloud",
        spec=spec,
        device=desired.devices["cloud"][1],
        config_hash=config_hash,
        images=sources.images,
        nats_secrets=sources.nats_secrets,
        clock_agent_dir=sources.clock_agent_dir,
    )
    desired.service = builders.build_cloud_service(owner=body)
    names = naming.PipelineNames(pipeline)
    wanted = {names.config: config_hash}
    if site is not None:
        config = site_plan.site_config(namespace, pipeline, spec, site)
        site_map = site_builders.build_site_config_map(
            owner=body, site_json=site_plan.site_json(config)
        )
        site_hash = builders.template_hash(site_map) or ""
        desired.site_config_map = site_map
        desired.dispatcher = site_builders.build_dispatcher(
            owner=body,
            spec=spec,
            cloud=desired.devices["cloud"][1],
            site_hash=site_hash,
            images=sources.images,
            nats_secrets=sources.nats_secrets,
        )
        desired.dispatcher_service = site_builders.build_dispatcher_service(owner=body)
        wanted[names.site] = site_hash
    for name, want in wanted.items():
        current = await sources.kube.get(CONFIG_MAPS, namespace, name)
        if current is None or builders.template_hash(current) != want:
            return False
    return True
