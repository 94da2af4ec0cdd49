"""Gathering one pipeline's facts, step by step, and the children it would need.

Each step is gathered only when the one before it is done (there is no plan to train before both
profiles exist). Alongside the facts goes `Desired`: the objects and store keys the actions of
the decision will use, built from the same inputs so facts and actions cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from inferedge.api.convert import plan_request
from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.pipeline import ArtifactRef, InferencePipelineSpec, PlanSummary
from inferedge.controller import builders, naming
from inferedge.controller.context import Body, Controller
from inferedge.controller.kube import CONFIG_MAPS
from inferedge.controller.observe import job_facts, job_snapshot, rollout_facts
from inferedge.controller.stores import StoreFailure
from inferedge.core.errors import InferedgeError, describe_validation_error
from inferedge.core.lifecycle import (
    ArtifactFacts,
    Failure,
    PipelineFacts,
    PlanFacts,
    ProfileFacts,
    Role,
    waits,
)
from inferedge.core.manifest import artifact_prefix
from inferedge.core.plan import Plan
from inferedge.core.planner import make_plan
from inferedge.core.profile import DeviceProfile
from inferedge.storage import ArtifactStore

ROLES: tuple[Role, Role] = ("edge", "cloud")


@dataclass
class Desired:
    """What the decision's actions need, filled as far as the facts go."""

    body: Body
    spec: InferencePipelineSpec | None = None
    devices: dict[str, tuple[str, DeviceProfileSpec]] = field(default_factory=dict)
    store: ArtifactStore | None = None
    plan: Plan | None = None
    plan_key: str = ""
    inputs: builders.TrainingInputs | None = None
    config_map: dict[str, Any] | None = None
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    service: dict[str, Any] | None = None
    summary: PlanSummary | None = None
    threshold: float | None = None
    offload_ratio: float | None = None
    artifacts: ArtifactRef | None = None


@dataclass(frozen=True)
class Gathered:
    """The facts for the lifecycle and what its actions would create."""

    facts: PipelineFacts
    desired: Desired


def _validate(body: Body) -> tuple[InferencePipelineSpec | None, Failure | None]:
    problem = naming.name_problem(str(body["metadata"]["name"]), "InferencePipeline")
    if problem:
        return None, waits("InvalidName", problem, "recreate the pipeline with a shorter name")
    try:
        return InferencePipelineSpec.model_validate(body.get("spec") or {}), None
    except ValidationError as exc:
        text = describe_validation_error(exc, "spec")
        return None, waits("InvalidSpec", text, "fix the spec and apply it again")


def _device(
    ctl: Controller, namespace: str, spec: InferencePipelineSpec, role: Role
) -> tuple[str, DeviceProfileSpec] | Failure:
    name = (spec.edge if role == "edge" else spec.cloud).profile
    field_name = f"spec.{role}.profile"
    body = ctl.device_profile((namespace, name))
    if body is None:
        return waits(
            "DeviceProfileNotFound",
            f"{field_name}: no DeviceProfile {name!r} in namespace {namespace!r}",
            "create it; the pipeline goes on when it appears",
        )
    problem = naming.name_problem(name, "DeviceProfile")
    if problem:
        text = f"DeviceProfile {name!r}: {problem}"
        return waits("DeviceProfileInvalid", text, "use a DeviceProfile with a shorter name")
    try:
        device = DeviceProfileSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        text = describe_validation_error(exc, f"DeviceProfile {name!r} spec")
        return waits("DeviceProfileInvalid", text, f"fix DeviceProfile {name!r}")
    if device.role != role:
        return waits(
            "DeviceProfileRoleMismatch",
            f"{field_name}: DeviceProfile {name!r} has role {device.role!r}, expected {role!r}",
            f"point {field_name} at a DeviceProfile of role {role!r}",
        )
    return name, device


def _rollouts(ctl: Controller, namespace: str, pipeline: str, desired: Desired) -> dict[str, Any]:
    names = naming.PipelineNames(pipeline)
    out = {}
    for role, name in (("edge", names.edge), ("cloud", names.cloud)):
        built = desired.deployments.get(role)
        want = builders.template_hash(built) if built is not None else None
        out[role] = rollout_facts(name, ctl.deployment(namespace, name), want)
    return out


async def gather(ctl: Controller, body: Body) -> Gathered:
    """Facts about `body` (a pipeline as read from the API) and its desired children."""
    meta = body["metadata"]
    namespace, pipeline = str(meta["namespace"]), str(meta["name"])
    generation = int(meta.get("generation") or 0)
    desired = Desired(body=body)
    facts = await _steps(ctl, namespace, pipeline, generation, desired)
    rollouts = _rollouts(ctl, namespace, pipeline, desired)
    facts = replace(facts, edge=rollouts["edge"], cloud=rollouts["cloud"])
    return Gathered(facts=facts, desired=desired)


async def _steps(
    ctl: Controller, namespace: str, pipeline: str, generation: int, desired: Desired
) -> PipelineFacts:
    spec, problem = _validate(desired.body)
    if problem is not None or spec is None:
        return PipelineFacts(generation, blocker=problem)
    desired.spec = spec
    for role in ROLES:
        found = _device(ctl, namespace, spec, role)
        if isinstance(found, Failure):
            return PipelineFacts(generation, blocker=found)
        desired.devices[role] = found
    try:
        desired.store = await ctl.stores.open(namespace, spec.storage)
        profiles = await _profiles(ctl, namespace, spec, desired)
    except StoreFailure as exc:
        return PipelineFacts(generation, profiles=exc.failure)
    states = tuple(p for p, _ in profiles)
    loaded = [profile for _, profile in profiles]
    if any(p is None for p in loaded):
        return PipelineFacts(generation, profiles=states)
    edge, cloud = loaded
    assert edge is not None
    assert cloud is not None
    try:
        plan = make_plan(edge, cloud, plan_request(spec, desired.devices["edge"][1]))
    except InferedgeError as exc:
        failure = waits(
            "PlanInfeasible",
            str(exc),
            "change spec.partitioning or spec.exits, or the DeviceProfiles' link",
        )
        return PipelineFacts(generation, profiles=states, plan=failure)
    desired.plan = plan
    desired.plan_key = naming.plan_store_key(namespace, pipeline, plan.hash)
    desired.summary = PlanSummary(
        hash=plan.hash,
        split=plan.split,
        split_name=plan.split_name,
        edge_exits=tuple(e.cut_index for e in plan.edge_exits()),
        cloud_exits=tuple(e.cut_index for e in plan.cloud_exits()),
        predicted_latency_ms=plan.final_latency_ms,
    )
    try:
        stored = await ctl.stores.has(desired.store, desired.plan_key)
    except StoreFailure as exc:
        return PipelineFacts(generation, profiles=states, plan=exc.failure)
    plan_facts = PlanFacts(hash=plan.hash, summary=_describe(plan), stored=stored)
    if not stored:
        return PipelineFacts(generation, profiles=states, plan=plan_facts)
    return await _training(
        ctl,
        namespace=namespace,
        pipeline=pipeline,
        generation=generation,
        desired=desired,
        states=states,
        plan_facts=plan_facts,
    )


def _describe(plan: Plan) -> str:
    edge = [e.cut_index for e in plan.edge_exits()]
    cloud = [e.cut_index for e in plan.cloud_exits()]
    return f"split after cut {plan.split} ({plan.split_name}), exits edge {edge} cloud {cloud}"


async def _profiles(
    ctl: Controller, namespace: str, spec: InferencePipelineSpec, desired: Desired
) -> list[tuple[ProfileFacts, DeviceProfile | None]]:
    out: list[tuple[ProfileFacts, DeviceProfile | None]] = []
    assert desired.store is not None
    for role in ROLES:
        name, device = desired.devices[role]
        key = naming.profiling_key(spec, device)
        label = naming.profile_result_label(spec, key)
        body = ctl.device_profile((namespace, name)) or {}
        results = (body.get("status") or {}).get("results") or []
        result = next((r for r in results if r.get("model") == label), None)
        if result is not None:
            store_key = naming.profile_store_key(namespace, name, key)
            profile = await ctl.stores.profile(
                desired.store, store_key, str(result.get("profiledAt"))
            )
            out.append((ProfileFacts(role, name, "Ready"), profile))
            continue
        job_name = naming.profile_job_name(name, key)
        snapshot = job_snapshot(ctl.job(namespace, job_name))
        if snapshot.state == "Failed":
            message = f"Job {job_name} failed: {snapshot.message or 'no reason given'}"
            out.append((ProfileFacts(role, name, "Failed", message), None))
        elif snapshot.state in ("Active", "Succeeded"):
            out.append((ProfileFacts(role, name, "Running"), None))
        else:
            out.append((ProfileFacts(role, name, "Missing"), None))
    return out


async def _training(
    ctl: Controller,
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
    key = naming.training_key(spec, plan.hash)
    devices = desired.devices
    desired.inputs = builders.TrainingInputs(
        training_key=key,
        plan_key=desired.plan_key,
        edge_profile_key=naming.profile_store_key(
            namespace, devices["edge"][0], naming.profiling_key(spec, devices["edge"][1])
        ),
        cloud_profile_key=naming.profile_store_key(
            namespace, devices["cloud"][0], naming.profiling_key(spec, devices["cloud"][1])
        ),
        output_prefix=naming.training_prefix(namespace, pipeline, key),
    )
    names = naming.PipelineNames(pipeline)
    training = job_facts(names.train(key), ctl.job(namespace, names.train(key)))
    export_job = ctl.job(namespace, names.export(key))
    export = job_facts(names.export(key), export_job)
    base = PipelineFacts(
        generation, profiles=states, plan=plan_facts, training=training, export=export
    )
    if training.state != "Succeeded" or export.state != "Succeeded":
        return base
    prefix = artifact_prefix(namespace, pipeline, plan.hash)
    stamp = str((export_job or {}).get("metadata", {}).get("uid", ""))
    try:
        found = await ctl.stores.manifest(store, prefix, stamp)
    except StoreFailure as exc:
        return replace(base, artifacts=exc.failure)
    artifacts = ArtifactFacts(prefix=prefix, committed=found is not None)
    if found is None:
        return replace(base, artifacts=artifacts)
    manifest, sha256 = found
    calibration = manifest.calibration
    fixed = spec.inference.threshold
    desired.threshold = (
        fixed if fixed is not None else (calibration.threshold if calibration else None)
    )
    if calibration is not None and (fixed is None or fixed == calibration.threshold):
        desired.offload_ratio = calibration.offload_rate
    desired.artifacts = ArtifactRef(
        uri=f"{store.uri}/{prefix}", manifest_sha256=sha256, digests=manifest.digests()
    )
    config_current = await _deploy_desired(ctl, namespace, pipeline, desired, prefix)
    return replace(base, artifacts=artifacts, config_current=config_current)


async def _deploy_desired(
    ctl: Controller, namespace: str, pipeline: str, desired: Desired, prefix: str
) -> bool:
    spec, body = desired.spec, desired.body
    assert spec is not None
    config_map = builders.build_config_map(owner=body, data=builders.runtime_config(spec, prefix))
    desired.config_map = config_map
    config_hash = builders.template_hash(config_map) or ""
    for role in ROLES:
        desired.deployments[role] = builders.build_deployment(
            owner=body,
            role=role,
            spec=spec,
            device=desired.devices[role][1],
            config_hash=config_hash,
            images=ctl.options.images,
        )
    desired.service = builders.build_cloud_service(owner=body)
    current = await ctl.kube.get(CONFIG_MAPS, namespace, naming.PipelineNames(pipeline).config)
    return current is not None and builders.template_hash(current) == config_hash
