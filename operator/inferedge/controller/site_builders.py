"""Builders of a site's children (`spec.distribution`): the site ConfigMap, the dispatcher
Deployment and its Service. Pure functions: specs in, Kubernetes objects (plain dicts) out.

The dispatcher (`inferedge dispatch`) is the site's ingress: it serves OIP v2 on port 8080 as
an edge does and spreads the requests over the pools' replicas through NATS, signed in as the
`dispatcher` identity. It runs the runtime image on the cloud DeviceProfile's nodes (its node
selector and tolerations; no accelerator, no runtime class), locked down like every other pod.
Its site file's hash is on its pod template, so a new decision rolls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.controller import naming
from inferedge.controller.builders import build_service, probes
from inferedge.controller.pods import (
    DEFAULT_NATS_SECRETS,
    HTTP_PORT,
    Images,
    KubeObject,
    NatsSecrets,
    build_container,
    nats_env,
    object_metadata,
    pod_security,
    scheduling,
)
from inferedge.core.digest import json_digest

SITE_DIR: Final = "/etc/inferedge/site"
SITE_FILE: Final = "site.json"
DISPATCHER: Final = "dispatcher"
"""The dispatcher's component label and container name."""
DISPATCHER_RESOURCES: Final = {"requests": {"cpu": "100m", "memory": "256Mi"}}
"""It forwards requests and keeps counters: no accelerator, little memory."""


def build_site_config_map(*, owner: Mapping[str, Any], site_json: str) -> KubeObject:
    """The ConfigMap `<pipeline>-site` holding the dispatcher's `site.json`."""
    meta = owner["metadata"]
    names = naming.PipelineNames(meta["name"])
    labels = naming.pipeline_labels(meta["name"], "site-config")
    data = {SITE_FILE: site_json}
    metadata = object_metadata(names.site, meta["namespace"], owner, labels)
    metadata["annotations"] = {naming.CONFIG_HASH: json_digest(data)}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def dispatch_args() -> list[str]:
    """`inferedge dispatch` on all interfaces of the pod (probes and the Service reach it
    there), reading the site file from the mounted ConfigMap."""
    return [
        "dispatch",
        "--site",
        f"{SITE_DIR}/{SITE_FILE}",
        "--host",
        "0.0.0.0",
        "--port",
        str(HTTP_PORT),
    ]


def build_dispatcher(
    *,
    owner: Mapping[str, Any],
    spec: InferencePipelineSpec,
    cloud: DeviceProfileSpec,
    site_hash: str,
    images: Images,
    nats_secrets: NatsSecrets = DEFAULT_NATS_SECRETS,
) -> KubeObject:
    """The dispatcher Deployment `<pipeline>-dispatcher`: one pod (its shares, credits and the
    replicas it has heard are its own), rolled when `site_hash` changes."""
    meta = owner["metadata"]
    pipeline, namespace = meta["name"], meta["namespace"]
    names = naming.PipelineNames(pipeline)
    labels = naming.pipeline_labels(pipeline, DISPATCHER)
    selector = {naming.INSTANCE_LABEL: pipeline, naming.COMPONENT_LABEL: DISPATCHER}
    env: list[dict[str, Any]] = []
    if spec.messaging.nats_url:
        env.append({"name": "INFEREDGE_NATS_URL", "value": spec.messaging.nats_url})
    env += nats_env(spec.messaging, DISPATCHER, nats_secrets)
    container = build_container(
        DISPATCHER,
        images.for_role("cloud", spec.model.framework),
        args=dispatch_args(),
        env=env,
        resources=dict(DISPATCHER_RESOURCES),
        pull_policy=images.pull_policy,
        extra_mounts=[{"name": "site", "mountPath": SITE_DIR, "readOnly": True}],
    )
    container["ports"] = [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    container.update(probes())
    placement = scheduling(cloud)
    placement.pop("runtimeClassName", None)  # the cloud's accelerator runtime is not needed
    deployment_spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {"labels": labels, "annotations": {naming.SITE_HASH: site_hash}},
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": pod_security(),
                "containers": [container],
                "volumes": [
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "site", "configMap": {"name": names.site}},
                ],
                **placement,
            },
        },
    }
    metadata = object_metadata(names.dispatcher, namespace, owner, labels)
    metadata["annotations"] = {naming.TEMPLATE_HASH: json_digest(deployment_spec)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": deployment_spec,
    }


def build_dispatcher_service(*, owner: Mapping[str, Any]) -> KubeObject:
    """The Service `<pipeline>-dispatcher` (port 8080, `http`): where clients send requests."""
    name = naming.PipelineNames(owner["metadata"]["name"]).dispatcher
    return build_service(owner=owner, name=name, component=DISPATCHER)
