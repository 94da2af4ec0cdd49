"""Builders of the serving children: the runtime ConfigMap, the edge and cloud Deployments,
the cloud Service, and Events. Pure functions: specs in, Kubernetes objects (plain dicts) out.

Every child carries an owner reference (so deleting the owner deletes it), the inferedge labels
and a deterministic name; pods are locked down as `inferedge.controller.pods` describes. The
pipeline's Jobs are built in `inferedge.controller.jobs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inferedge.api.convert import link_for
from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.edge_pools import EdgePool
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.controller import naming
from inferedge.controller.pods import (
    CACHE_DIR,
    CLOCK_AGENT_DIR,
    DEFAULT_NATS_SECRETS,
    HTTP_PORT,
    Images,
    KubeObject,
    NatsSecrets,
    build_container,
    container_resources,
    nats_env,
    object_metadata,
    pod_security,
    scheduling,
    store_env,
)
from inferedge.core.digest import json_digest
from inferedge.core.roles import Role


def runtime_config(
    spec: InferencePipelineSpec,
    artifact_prefix: str,
    manifest_sha256: str,
    edge: DeviceProfileSpec | None = None,
) -> dict[str, str]:
    """What `inferedge serve` reads from the environment (the runtime ConfigMap's data).

    `manifest_sha256` pins the set: the operator recorded it in the status when the export
    finished, and the servers refuse the set if the stored manifest no longer matches.

    The variable names are the serve command's own (`INFEREDGE_SERVE_<FLAG>`, or the explicit
    envvar of an option), so the ConfigMap needs no translation layer. The edge profile's
    `tuning` travels as the JSON the serve command's --tuning takes, and the plan's link as
    --link-bandwidth-mbps/--link-rtt-ms (the cloud ignores both); `spec.adaptation`'s
    switching as --adapt and --switch-*.
    """
    inference = spec.inference
    batching = inference.cloud_batching
    data = {
        "INFEREDGE_STORE": spec.storage.uri,
        "INFEREDGE_PREFIX": artifact_prefix,
        "INFEREDGE_MANIFEST_SHA256": manifest_sha256,
        "INFEREDGE_SERVE_OFFLOAD_TIMEOUT_MS": f"{inference.offload_timeout_ms:g}",
        "INFEREDGE_SERVE_ENCODING": inference.activation_encoding,
        "INFEREDGE_SERVE_OFFLOADS_IN_FLIGHT": str(inference.offloads_in_flight),
        "INFEREDGE_SERVE_MAX_BATCH_SIZE": str(batching.max_batch_size),
        "INFEREDGE_SERVE_MAX_WAIT_MS": f"{batching.max_wait_ms:g}",
        "INFEREDGE_SERVE_MAX_QUEUED_SAMPLES": str(batching.max_queued_samples),
        "INFEREDGE_SERVE_MAX_IN_FLIGHT": str(batching.max_in_flight),
    }
    if spec.messaging.nats_url:
        data["INFEREDGE_NATS_URL"] = spec.messaging.nats_url
    if inference.threshold is not None:
        data["INFEREDGE_SERVE_THRESHOLD"] = f"{inference.threshold:g}"
    if edge is not None:
        link = link_for(spec, edge)  # where the edge's link estimate starts
        data["INFEREDGE_SERVE_LINK_BANDWIDTH_MBPS"] = f"{link.bandwidth_mbps:g}"
        data["INFEREDGE_SERVE_LINK_RTT_MS"] = f"{link.rtt_ms:g}"
        if edge.tuning is not None:
            data["INFEREDGE_SERVE_TUNING"] = edge.tuning.model_dump_json(by_alias=True)
    if spec.adaptation is not None:
        # The set is an operating space: its edge follows the link with this hysteresis.
        switching = spec.adaptation.switching
        data["INFEREDGE_SERVE_ADAPT"] = "follow"
        data["INFEREDGE_SERVE_SWITCH_CONFIRMATIONS"] = str(switching.confirmations)
        data["INFEREDGE_SERVE_SWITCH_MIN_DWELL_S"] = f"{switching.min_dwell_s:g}"
    return data


def build_config_map(*, owner: Mapping[str, Any], data: Mapping[str, str]) -> KubeObject:
    """The runtime ConfigMap; its hash goes into pod templates so a change rolls the pods."""
    meta = owner["metadata"]
    names = naming.PipelineNames(meta["name"])
    labels = naming.pipeline_labels(meta["name"], "runtime-config")
    metadata = object_metadata(names.config, meta["namespace"], owner, labels)
    metadata["annotations"] = {naming.CONFIG_HASH: json_digest(dict(data))}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}


def serve_args(role: Role) -> list[str]:
    """`inferedge serve edge|cloud` on all interfaces; the rest comes from the ConfigMap.

    All interfaces of the pod's own network namespace: its loopback and its pod-network
    address. The kubelet's probes, the Service and Prometheus reach a pod on that address, so
    neither role can bind more narrowly: the edge serves inference there, the cloud only
    health, model metadata and /metrics (it takes work from NATS alone, which it dials out
    to). Who may reach that port is a NetworkPolicy's business (docs/operations.md).
    """
    return [
        "serve",
        role,
        "--host",
        "0.0.0.0",
        "--port",
        str(HTTP_PORT),
        "--cache-dir",
        CACHE_DIR,
    ]


def pool_env(pool: str, answer_at: int | None) -> list[dict[str, Any]]:
    """What makes an edge pod a replica of a site's pool: the pool, the pod's own name as the
    replica's (a DNS label: Kubernetes cuts generated pod names to 63 characters), and the
    edge exit every request answers at when the pool serves a truncated version."""
    env: list[dict[str, Any]] = [
        {"name": "INFEREDGE_POOL", "value": pool},
        {
            "name": "INFEREDGE_REPLICA",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        },
    ]
    if answer_at is not None:
        env.append({"name": "INFEREDGE_ANSWER_AT_EXIT", "value": str(answer_at)})
    return env


def _probe(path: str, period: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period}


def probes() -> dict[str, Any]:
    """The OIP v2 health probes every serving container has, on its `http` port."""
    return {
        "readinessProbe": _probe("/v2/health/ready", 5),
        "livenessProbe": {**_probe("/v2/health/live", 10), "failureThreshold": 6},
    }


def build_deployment(
    *,
    owner: Mapping[str, Any],
    role: Role,
    spec: InferencePipelineSpec,
    device: DeviceProfileSpec,
    config_hash: str,
    images: Images,
    nats_secrets: NatsSecrets = DEFAULT_NATS_SECRETS,
    clock_agent_dir: str = CLOCK_AGENT_DIR,
    pool: EdgePool | None = None,
    answer_at: int | None = None,
) -> KubeObject:
    """The edge or cloud Deployment; pods restart when the config hash changes, and sign in
    to NATS as their role's identity (see `pods.nats_env`). An edge that tunes its clocks
    mounts the node's `clock_agent_dir` where serve looks for the agent's socket.

    An edge Deployment serves one pool of the edge (`pool`, by default the reference pool;
    `device` is that pool's DeviceProfile): with `spec.edge.pools` it is named and labelled
    after the pool; the single form's is `<pipeline>-edge`, as it always was. With
    `spec.distribution` its pods join the site as replicas of the pool (`pool_env`), answering
    at the edge exit `answer_at` when the pool serves a truncated version."""
    meta = owner["metadata"]
    pipeline, namespace = meta["name"], meta["namespace"]
    names = naming.PipelineNames(pipeline)
    labels = naming.pipeline_labels(pipeline, role)
    selector = {naming.INSTANCE_LABEL: pipeline, naming.COMPONENT_LABEL: role}
    served = pool if pool is not None else spec.edge.reference
    env = [*store_env(spec.storage), *nats_env(spec.messaging, role, nats_secrets)]
    if role == "edge":
        if spec.edge.pools is not None:
            labels = naming.pool_labels(pipeline, served.name)
            selector[naming.POOL_LABEL] = served.name
        if spec.distribution is not None:
            env += pool_env(served.name, answer_at)
    container = build_container(
        role,
        images.for_role(role, spec.model.framework),
        args=serve_args(role),
        env=env,
        resources=container_resources(device),
        pull_policy=images.pull_policy,
        extra_mounts=[{"name": "cache", "mountPath": CACHE_DIR}],
    )
    container["envFrom"] = [{"configMapRef": {"name": names.config}}]
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {}},
        {"name": "cache", "emptyDir": {}},
    ]
    if role == "edge" and device.tuning is not None and device.tuning.clocks:
        # The node's clock agent (the chart's clockAgent) listens in this host directory; a
        # socket is reached through a read-only mount, and nothing else lives there.
        volumes.append(
            {"name": "clock-agent", "hostPath": {"path": clock_agent_dir, "type": "Directory"}}
        )
        container["volumeMounts"].append(
            {"name": "clock-agent", "mountPath": CLOCK_AGENT_DIR, "readOnly": True}
        )
    container["ports"] = [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    container.update(probes())
    deployment_spec: dict[str, Any] = {
        "replicas": served.replicas if role == "edge" else spec.cloud.replicas,
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {
                "labels": labels,
                "annotations": {naming.CONFIG_HASH: config_hash},
            },
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": pod_security(),
                "containers": [container],
                "volumes": volumes,
                **scheduling(device),
            },
        },
    }
    name = names.edge_of(spec.edge, served.name) if role == "edge" else names.cloud
    metadata = object_metadata(name, namespace, owner, labels)
    metadata["annotations"] = {naming.TEMPLATE_HASH: json_digest(deployment_spec)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": deployment_spec,
    }


def build_service(*, owner: Mapping[str, Any], name: str, component: str) -> KubeObject:
    """A ClusterIP Service on port `http` in front of the pipeline's `component` pods."""
    meta = owner["metadata"]
    pipeline = meta["name"]
    labels = naming.pipeline_labels(pipeline, component)
    service_spec = {
        "type": "ClusterIP",
        "selector": {naming.INSTANCE_LABEL: pipeline, naming.COMPONENT_LABEL: component},
        "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
    }
    metadata = object_metadata(name, meta["namespace"], owner, labels)
    metadata["annotations"] = {naming.TEMPLATE_HASH: json_digest(service_spec)}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": service_spec}


def build_cloud_service(*, owner: Mapping[str, Any]) -> KubeObject:
    """A ClusterIP Service in front of the cloud pods (health, metrics, OIP metadata)."""
    name = naming.PipelineNames(owner["metadata"]["name"]).cloud
    return build_service(owner=owner, name=name, component="cloud")


def build_event(
    *,
    involved: Mapping[str, Any],
    type: str,
    reason: str,
    message: str,
    component: str,
    now: str,
) -> KubeObject:
    """A core/v1 Event about `involved` (shown by `kubectl describe` and `kubectl get events`)."""
    meta = involved["metadata"]
    text = message if len(message) <= 1024 else message[:1021] + "..."
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": involved["apiVersion"],
            "kind": involved["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": type,
        "reason": reason,
        "message": text,
        "action": reason,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def template_hash(obj: Mapping[str, Any]) -> str | None:
    """The hash a built (or stored) object carries for replace-if-changed decisions."""
    annotations = obj.get("metadata", {}).get("annotations") or {}
    value = annotations.get(naming.TEMPLATE_HASH) or annotations.get(naming.CONFIG_HASH)
    return str(value) if value is not None else None
