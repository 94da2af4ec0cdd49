"""kopf handlers: thin. They index objects, nudge reconcilers, and clean up the store on delete.

Run with `inferedge operator` (or `kopf run -m inferedge.controller.handlers`). Every decision is
made in `inferedge.core.lifecycle` and `inferedge.controller.profiling`; every object comes
from `inferedge.controller.builders`.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from inferedge.api import keys
from inferedge.api.pipeline import StorageSpec
from inferedge.controller import naming
from inferedge.controller.cache import Indices
from inferedge.controller.kube import Kube
from inferedge.controller.observe import plain
from inferedge.controller.operator import Operator
from inferedge.controller.settings import (
    CLEANUP_ATTEMPTS,
    OperatorOptions,
    configure,
)
from inferedge.controller.stores import StoreFailure
from inferedge.controller.views import PipelineView
from inferedge.core.conditions import Event

GROUP, VERSION = naming.GROUP, naming.VERSION
OURS = {naming.MANAGED_BY_LABEL: naming.MANAGED_BY}


def _operator(memo: Any) -> Operator:
    operator: Operator = memo["operator"]
    return operator


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account first, then the kubeconfig (KUBECONFIG read now, not when the
    kubernetes client was imported), then the official client's own login."""
    return (
        kopf.login_with_service_account(**kwargs)
        or kopf.login_with_kubeconfig(**kwargs)
        or kopf.login_via_client(**kwargs)
    )


@kopf.on.startup()
async def startup(*, settings: kopf.OperatorSettings, memo: Any, **kwargs: Any) -> None:
    """Configure kopf and build the operator that the other handlers share via memo.

    kopf passes each index as a keyword named after its function (`pipeline_index`, ...).
    """
    options = memo.get("options") or OperatorOptions()
    configure(settings, options)
    indices = Indices(
        pipelines=kwargs["pipeline_index"],
        device_profiles=kwargs["device_profile_index"],
        jobs=kwargs["job_index"],
        deployments=kwargs["deployment_index"],
    )
    operator = Operator(
        kube=Kube.connect(),
        options=options,
        indices=indices,
        logger=logging.getLogger("inferedge.controller"),
    )
    operator.start_periodic()
    memo["operator"] = operator


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stop the reconcilers."""
    if "operator" in memo:
        await _operator(memo).close()


def _key(namespace: str | None, name: str | None) -> tuple[str, str]:
    return (namespace or "", name or "")


@kopf.index(GROUP, VERSION, naming.PIPELINES)
def pipeline_index(
    namespace: str | None, name: str | None, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], Any]:
    """Every InferencePipeline, by (namespace, name)."""
    return {_key(namespace, name): plain(body)}


@kopf.index(GROUP, VERSION, naming.DEVICE_PROFILES)
def device_profile_index(
    namespace: str | None, name: str | None, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], Any]:
    """Every DeviceProfile, by (namespace, name)."""
    return {_key(namespace, name): plain(body)}


@kopf.index("batch", "v1", "jobs", labels=OURS)
def job_index(
    namespace: str | None, name: str | None, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], Any]:
    """The Jobs the operator made (profiling, training, export)."""
    return {_key(namespace, name): plain(body)}


@kopf.index("apps", "v1", "deployments", labels=OURS)
def deployment_index(
    namespace: str | None, name: str | None, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], Any]:
    """The Deployments the operator made (each edge pool's, the cloud's, a dispatcher)."""
    return {_key(namespace, name): plain(body)}


@kopf.on.event(GROUP, VERSION, naming.PIPELINES)
async def pipeline_changed(
    namespace: str | None, name: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """Reconcile the pipeline, and its DeviceProfiles (what they must profile may change)."""
    operator = _operator(memo)
    operator.pipelines.nudge(_key(namespace, name))
    for profile in PipelineView.from_body(body).profile_refs:
        operator.profiles.nudge(_key(namespace, profile))


@kopf.on.event(GROUP, VERSION, naming.DEVICE_PROFILES)
async def device_profile_changed(
    namespace: str | None, name: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """Reconcile the DeviceProfile and every pipeline that uses it."""
    operator = _operator(memo)
    operator.profiles.nudge(_key(namespace, name))
    operator.nudge_users(namespace or "", name or "")


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
async def job_changed(
    namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """A Job moved on: reconcile its owner (and the pipelines waiting on a profile)."""
    operator = _operator(memo)
    pipeline = labels.get(naming.PIPELINE_LABEL)
    if pipeline:
        operator.pipelines.nudge(_key(namespace, pipeline))
    device_profile = labels.get(naming.DEVICE_PROFILE_LABEL)
    if device_profile:
        operator.profiles.nudge(_key(namespace, device_profile))
        operator.nudge_users(namespace or "", device_profile)


@kopf.on.event("apps", "v1", "deployments", labels=OURS)
async def deployment_changed(
    namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """Pods became (un)ready or a rollout moved: Ready follows live readiness."""
    pipeline = labels.get(naming.PIPELINE_LABEL)
    if pipeline:
        _operator(memo).pipelines.nudge(_key(namespace, pipeline))


@kopf.on.delete(GROUP, VERSION, naming.PIPELINES, retries=CLEANUP_ATTEMPTS, backoff=5)
async def pipeline_deleted(
    *,
    body: kopf.Body,
    namespace: str | None,
    name: str,
    memo: Any,
    retry: int,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    """The finalizer's work: delete everything the pipeline stored. Children go by owner refs."""
    operator = _operator(memo)
    # Only spec.storage matters here: the rest of the spec may have been broken by a later edit.
    try:
        storage = StorageSpec.model_validate((body.get("spec") or {}).get("storage") or {})
    except ValidationError:
        logger.info("spec.storage is invalid: nothing can have been stored")
        return
    prefix = keys.pipeline_prefix(namespace or "", name)
    try:
        store = await operator.stores.open(namespace or "", storage)
        removed = await operator.stores.discard_pipeline(store, prefix)
    except StoreFailure as exc:
        if retry + 1 >= CLEANUP_ATTEMPTS:
            message = (
                f"gave up deleting artifacts under {storage.uri}/{prefix} after "
                f"{CLEANUP_ATTEMPTS} attempts: {exc.failure.message}; delete them by hand"
            )
            await operator.events.post(body, Event("Warning", "ArtifactsLeft", message))
            return
        raise kopf.TemporaryError(f"deleting artifacts: {exc.failure.message}", delay=5) from exc
    logger.info("deleted %d objects under %s/%s", removed, store.uri, prefix)
