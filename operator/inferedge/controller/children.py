"""Writing children: create once by deterministic name, replace only when the template changed."""

from __future__ import annotations

import contextlib
import copy
from datetime import UTC, datetime
from typing import Any

from inferedge.controller import builders
from inferedge.controller.kube import SERVICES, Conflict, Kube, resource_of


def now_rfc3339() -> str:
    """The current time as Kubernetes writes it (seconds, UTC, trailing Z)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


async def create_once(kube: Kube, obj: dict[str, Any]) -> None:
    """Create a child with a deterministic name; one that exists already is the same child."""
    with contextlib.suppress(Conflict):
        await kube.create(obj)


async def ensure(kube: Kube, desired: dict[str, Any]) -> bool:
    """Create `desired`, or replace what is there when its template hash differs.

    Returns True when something was written.
    """
    meta = desired["metadata"]
    resource = resource_of(desired)
    current = await kube.get(resource, meta["namespace"], meta["name"])
    if current is None:
        await create_once(kube, desired)
        return True
    if builders.template_hash(current) == builders.template_hash(desired):
        return False
    replacement = copy.deepcopy(desired)
    current_meta = current.get("metadata") or {}
    replacement["metadata"]["resourceVersion"] = current_meta.get("resourceVersion")
    # Keep annotations other controllers added (e.g. the Deployment's revision).
    annotations = {**(current_meta.get("annotations") or {}), **meta.get("annotations", {})}
    replacement["metadata"]["annotations"] = annotations
    if resource == SERVICES:
        for field in ("clusterIP", "clusterIPs"):  # immutable, assigned by the API server
            if field in (current.get("spec") or {}):
                replacement["spec"][field] = current["spec"][field]
    await kube.replace(replacement)
    return True
