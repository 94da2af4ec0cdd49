"""kopf handlers: thin. They index objects, nudge reconcilers, and clean up the store on delete.

Run with `inferedge operator` (or `kopf run -m inferedge.controller.handlers`). Every decision is
made in `inferedge.core.lifecycle` and `inferedge.controller.profiling`; every manifest comes
from `inferedge.controller.builders`.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from inferedge.api.pipeline import StorageSpec
from inferedge.controller import naming
from inferedge.controller.context import Controller, Indices
from inferedge.controller.kube import Kube
from inferedge.controller.observe import plain
from inferedge.controller.settings import (
    CLEANUP_ATTEMPTS,
    OperatorOptions,
    configure,
)
from inferedge.controller.stores import StoreFailure
from inferedge.core.lifecycle import Event

GROUP, VERSION = naming.GROUP, naming.VERSION
OURS = {naming.MANAGED_BY_LABEL: naming.MANAGED_BY}


def _controller(memo: Any) -> Controller:
    controller: Controller = memo["controller"]
    return controller


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
    """Configure kopf and build the controller that the other handlers share via memo.

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
    controller = Controller(
        kube=Kube.connect(),
        options=options,
        indices=indices,
        logger=logging.getLogger("inferedge.controller"),
    )
    controller.start_periodic()
    memo["controller"] = controller


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stop the reconcilers."""
    if "controller" in memo:
        await _controller(memo).close()


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
    """The Deployments the operator made (edge and cloud)."""
    return {_key(namespace, name): plain(body)}


@kopf.on.event(GROUP, VERSION, naming.PIPELINES)
async def pipeline_changed(
    namespace: str | None, name: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """Reconcile the pipeline, and its DeviceProfiles (what they must profile may change)."""
    controller = _controller(memo)
    controller.pipelines.nudge(_key(namespace, name))
    spec = body.get("spec") or {}
    for role in ("edge", "cloud"):
        profile = (spec.get(role) or {}).get("profile")
        if isinstance(profile, str):
            controller.profiles.nudge(_key(namespace, profile))


@kopf.on.event(GROUP, VERSION, naming.DEVICE_PROFILES)
async def device_profile_changed(
    namespace: str | None, name: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """Reconcile the DeviceProfile and every pipeline that uses it."""
    controller = _controller(memo)
    controller.profiles.nudge(_key(namespace, name))
    controller.nudge_users(namespace or "", name or "")


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
async def job_changed(
    namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """A Job moved on: reconcile its owner (and the pipelines waiting on a profile)."""
    controller = _controller(memo)
    pipeline = labels.get(naming.PIPELINE_LABEL)
    if pipeline:
        controller.pipelines.nudge(_key(namespace, pipeline))
    device_profile = labels.get(naming.DEVICE_PROFILE_LABEL)
    if device_profile:
        controller.profiles.nudge(_key(namespace, device_profile))
        controller.nudge_users(namespace or "", device_profile)


@kopf.on.event("apps", "v1", "deployments", labels=OURS)
async def deployment_changed(
    namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """Pods became (un)ready or a rollout moved: Ready follows live readiness."""
    pipeline = labels.get(naming.PIPELINE_LABEL)
    if pipeline:
        _controller(memo).pipelines.nudge(_key(namespace, pipeline))


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
    controller = _controller(memo)
    # Only spec.storage matters here: the rest of the spec may have been broken by a later edit.
    try:
        storage = StorageSpec.model_validate((body.get("spec") or {}).get("storage") or {})
    except ValidationError:
        logger.info("spec.storage is invalid: nothing can have been stored")
        return
    prefix = naming.pipeline_prefix(namespace or "", name)
    try:
        store = await controller.stores.open(namespace or "", storage)
        removed = await controller.stores.discard_pipeline(store, prefix)
    except StoreFailure as exc:
        if retry + 1 >= CLEANUP_ATTEMPTS:
            message = (
                f"gave up deleting artifacts under {storage.uri}/{prefix} after "
                f"{CLEANUP_ATTEMPTS} attempts: {exc.failure.message}; delete them by hand"
            )
            await controller.post_event(body, Event("Warning", "ArtifactsLeft", message))
            return
        raise kopf.TemporaryError(f"deleting artifacts: {exc.failure.message}", delay=5) from exc
    logger.info("deleted %d objects under %s/%s", removed, store.uri, prefix)
