"""Pure manifest builders: specs in, Kubernetes objects (plain dicts) out.

Every child carries an owner reference (so deleting the owner deletes it), the inferedge labels
and a deterministic name. Pods run as non-root with a read-only root filesystem, no
capabilities and the RuntimeDefault seccomp profile; writable paths are emptyDirs. Credentials
reach containers only as `valueFrom.secretKeyRef`, never as values. Every container runs a real
`inferedge` command (a test checks each against the CLI).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from inferedge import __version__
from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.pipeline import InferencePipelineSpec, MessagingSpec, StorageSpec
from inferedge.controller import naming

Role = Literal["edge", "cloud"]
Manifest = dict[str, Any]

HTTP_PORT: Final = 8080
CACHE_DIR: Final = "/var/cache/inferedge"
TMP_DIR: Final = "/tmp"
NON_ROOT_UID: Final = 65532
EDGE_DEFAULT_SELECTOR: Final = {"kubernetes.io/arch": "arm64"}

# Secret keys the operator reads (documented in docs/controller.md).
S3_ACCESS_KEY: Final = "accessKey"
S3_SECRET_KEY: Final = "secretKey"
NATS_SECRET_KEYS: Final = (
    ("INFEREDGE_NATS_USER", "user"),
    ("INFEREDGE_NATS_PASSWORD", "password"),
    ("INFEREDGE_NATS_TOKEN", "token"),
)


Framework = Literal["torch", "tensorflow"]


@dataclass(frozen=True)
class Images:
    """Container images the operator starts, by device role and by the model's framework.

    torch pipelines run on the runtime image (amd64, CPU/CUDA) and, on edge nodes, the Jetson
    one (L4T PyTorch); TensorFlow pipelines run on the TensorFlow runtime image, built for
    amd64 and arm64, on both roles unless `edge_tensorflow` names another.
    """

    runtime: str = f"ghcr.io/inferedge/runtime:{__version__}"
    edge: str = f"ghcr.io/inferedge/runtime-jetson:{__version__}"
    runtime_tensorflow: str = f"ghcr.io/inferedge/runtime-tensorflow:{__version__}"
    edge_tensorflow: str = f"ghcr.io/inferedge/runtime-tensorflow:{__version__}"
    pull_policy: str = "IfNotPresent"

    def for_role(self, role: Role, framework: Framework) -> str:
        """The image for pods of a `framework` model on a device class of `role`."""
        if framework == "tensorflow":
            return self.edge_tensorflow if role == "edge" else self.runtime_tensorflow
        return self.edge if role == "edge" else self.runtime


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """A controller owner reference to `owner` (an object as read from the API)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(
    name: str, namespace: str, owner: Mapping[str, Any], labels: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels),
        "ownerReferences": [owner_reference(owner)],
    }


def store_env(storage: StorageSpec) -> list[dict[str, Any]]:
    """S3 endpoint as a value; keys only through the Secret named in spec.storage."""
    env: list[dict[str, Any]] = []
    if storage.endpoint:
        env.append({"name": "INFEREDGE_S3_ENDPOINT", "value": storage.endpoint})
    if storage.secret_ref is not None:
        for var, key in (
            ("INFEREDGE_S3_ACCESS_KEY", S3_ACCESS_KEY),
            ("INFEREDGE_S3_SECRET_KEY", S3_SECRET_KEY),
        ):
            ref = {"name": storage.secret_ref.name, "key": key}
            env.append({"name": var, "valueFrom": {"secretKeyRef": ref}})
    return env


def nats_env(messaging: MessagingSpec) -> list[dict[str, Any]]:
    """NATS sign-in from the Secret in spec.messaging; each key is optional in the Secret."""
    if messaging.secret_ref is None:
        return []
    return [
        {
            "name": var,
            "valueFrom": {
                "secretKeyRef": {"name": messaging.secret_ref.name, "key": key, "optional": True}
            },
        }
        for var, key in NATS_SECRET_KEYS
    ]


def scheduling(device: DeviceProfileSpec) -> dict[str, Any]:
    """Pod-spec fields that pin a pod to a device class's nodes."""
    selector = dict(EDGE_DEFAULT_SELECTOR) if device.role == "edge" else {}
    selector.update(device.node_selector)
    out: dict[str, Any] = {}
    if selector:
        out["nodeSelector"] = selector
    if device.tolerations:
        out["tolerations"] = [
            t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in device.tolerations
        ]
    if device.runtime_class_name:
        out["runtimeClassName"] = device.runtime_class_name
    return out


def _resources(device: DeviceProfileSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if device.resources.requests:
        out["requests"] = dict(device.resources.requests)
    if device.resources.limits:
        out["limits"] = dict(device.resources.limits)
    return out


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_UID,
        "fsGroup": NON_ROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


# Libraries that write caches (torch, matplotlib) find a writable HOME on the tmp emptyDir.
_BASE_ENV: Final = (
    {"name": "HOME", "value": TMP_DIR},
    {"name": "MPLCONFIGDIR", "value": f"{TMP_DIR}/matplotlib"},
)


def _container(
    name: str,
    image: str,
    *,
    args: list[str],
    env: list[dict[str, Any]],
    resources: dict[str, Any],
    pull_policy: str,
    extra_mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": ["inferedge"],
        "args": args,
        "env": [*_BASE_ENV, *env],
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": TMP_DIR}, *(extra_mounts or [])],
    }
    if resources:
        container["resources"] = resources
    return container


def _job(
    *,
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    labels: Mapping[str, str],
    container: dict[str, Any],
    placement: dict[str, Any],
    backoff_limit: int,
) -> Manifest:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(name, namespace, owner, labels),
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security(),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                    **placement,
                },
            },
        },
    }


def _shape(shape: tuple[int, ...]) -> str:
    return ",".join(str(d) for d in shape)


def profiling_args(
    spec: InferencePipelineSpec, device_name: str, device: DeviceProfileSpec, store_key: str
) -> list[str]:
    """`inferedge cluster profile ...`: measure the model on this node, write to the store."""
    model, profiling = spec.model, device.profiling
    args = [
        "cluster",
        "profile",
        model.name,
        "--framework",
        model.framework,
        "--input-shape",
        _shape(model.input_shape),
        "--batch-sizes",
        ",".join(str(b) for b in profiling.batch_sizes),
        "--warmup",
        str(profiling.warmup),
        "--repeats",
        str(profiling.repeats),
        "--device-name",
        device_name,
        "--store",
        spec.storage.uri,
        "--key",
        store_key,
    ]
    if model.uri:
        args += ["--model-uri", model.uri]
    if model.num_classes is not None:
        args += ["--num-classes", str(model.num_classes)]
    else:
        args += ["--dataset", spec.dataset.uri or spec.dataset.name]
    return args


def build_profiling_job(
    *,
    owner: Mapping[str, Any],
    device: DeviceProfileSpec,
    spec: InferencePipelineSpec,
    key: str,
    images: Images,
) -> Manifest:
    """The Job that profiles one model on one DeviceProfile's nodes (owned by the profile)."""
    meta = owner["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    store_key = naming.profile_store_key(namespace, name, key)
    container = _container(
        "profile",
        images.for_role(device.role, spec.model.framework),
        args=profiling_args(spec, name, device, store_key),
        env=store_env(spec.storage),
        resources=_resources(device),
        pull_policy=images.pull_policy,
    )
    return _job(
        name=naming.profile_job_name(name, key),
        namespace=namespace,
        owner=owner,
        labels=naming.profile_labels(name, key),
        container=container,
        placement=scheduling(device),
        backoff_limit=2,
    )


@dataclass(frozen=True)
class TrainingInputs:
    """Store keys a training and export run reads and writes."""

    training_key: str
    plan_key: str
    edge_profile_key: str
    cloud_profile_key: str
    output_prefix: str


def training_args(spec: InferencePipelineSpec, inputs: TrainingInputs) -> list[str]:
    """`inferedge cluster train ...` (the spec itself travels in INFEREDGE_PIPELINE_SPEC)."""
    return [
        "cluster",
        "train",
        "--store",
        spec.storage.uri,
        "--plan-key",
        inputs.plan_key,
        "--edge-profile-key",
        inputs.edge_profile_key,
        "--cloud-profile-key",
        inputs.cloud_profile_key,
        "--output-prefix",
        inputs.output_prefix,
    ]


def export_args(
    spec: InferencePipelineSpec, inputs: TrainingInputs, namespace: str, pipeline: str
) -> list[str]:
    """`inferedge cluster export ...`: publish both partitions as one committed set."""
    return [
        "cluster",
        "export",
        "--store",
        spec.storage.uri,
        "--plan-key",
        inputs.plan_key,
        "--training-prefix",
        inputs.output_prefix,
        "--namespace",
        namespace,
        "--pipeline",
        pipeline,
    ]


def _pipeline_job(
    *,
    owner: Mapping[str, Any],
    spec: InferencePipelineSpec,
    cloud: DeviceProfileSpec,
    images: Images,
    name: str,
    component: str,
    args: list[str],
    extra_env: list[dict[str, Any]],
    backoff_limit: int,
    key: str,
) -> Manifest:
    meta = owner["metadata"]
    labels = {**naming.pipeline_labels(meta["name"], component), naming.KEY_LABEL: key}
    container = _container(
        component,
        images.for_role("cloud", spec.model.framework),
        args=args,
        env=[*extra_env, *store_env(spec.storage)],
        resources=_resources(cloud),
        pull_policy=images.pull_policy,
    )
    # Training runs where the cloud part runs: that device class has the compute.
    return _job(
        name=name,
        namespace=meta["namespace"],
        owner=owner,
        labels=labels,
        container=container,
        placement=scheduling(cloud),
        backoff_limit=backoff_limit,
    )


def build_training_job(
    *,
    owner: Mapping[str, Any],
    spec: InferencePipelineSpec,
    cloud: DeviceProfileSpec,
    inputs: TrainingInputs,
    images: Images,
) -> Manifest:
    """The Job that trains the backbone (unless given) and the exits, and calibrates c_thr."""
    names = naming.PipelineNames(owner["metadata"]["name"])
    spec_json = spec.model_dump_json(by_alias=True, exclude_none=True)
    return _pipeline_job(
        owner=owner,
        spec=spec,
        cloud=cloud,
        images=images,
        name=names.train(inputs.training_key),
        component="train",
        args=training_args(spec, inputs),
        extra_env=[{"name": "INFEREDGE_PIPELINE_SPEC", "value": spec_json}],
        backoff_limit=1,
        key=inputs.training_key,
    )


def build_export_job(
    *,
    owner: Mapping[str, Any],
    spec: InferencePipelineSpec,
    cloud: DeviceProfileSpec,
    inputs: TrainingInputs,
    images: Images,
) -> Manifest:
    """The Job that exports both partitions with their exits and commits them to the store."""
    meta = owner["metadata"]
    names = naming.PipelineNames(meta["name"])
    return _pipeline_job(
        owner=owner,
        spec=spec,
        cloud=cloud,
        images=images,
        name=names.export(inputs.training_key),
        component="export",
        args=export_args(spec, inputs, meta["namespace"], meta["name"]),
        extra_env=[],
        backoff_limit=2,
        key=inputs.training_key,
    )


def runtime_config(spec: InferencePipelineSpec, artifact_prefix: str) -> dict[str, str]:
    """What `inferedge serve` reads from the environment (the runtime ConfigMap's data).

    The variable names are the serve command's own (`INFEREDGE_SERVE_<FLAG>`, or the explicit
    envvar of an option), so the ConfigMap needs no translation layer.
    """
    inference = spec.inference
    data = {
        "INFEREDGE_STORE": spec.storage.uri,
        "INFEREDGE_PREFIX": artifact_prefix,
        "INFEREDGE_SERVE_OFFLOAD_TIMEOUT_MS": f"{inference.offload_timeout_ms:g}",
        "INFEREDGE_SERVE_ENCODING": inference.activation_encoding,
    }
    if spec.messaging.nats_url:
        data["INFEREDGE_NATS_URL"] = spec.messaging.nats_url
    if inference.threshold is not None:
        data["INFEREDGE_SERVE_THRESHOLD"] = f"{inference.threshold:g}"
    return data


def build_config_map(*, owner: Mapping[str, Any], data: Mapping[str, str]) -> Manifest:
    """The runtime ConfigMap; its hash goes into pod templates so a change rolls the pods."""
    meta = owner["metadata"]
    names = naming.PipelineNames(meta["name"])
    labels = naming.pipeline_labels(meta["name"], "runtime-config")
    metadata = _metadata(names.config, meta["namespace"], owner, labels)
    metadata["annotations"] = {naming.CONFIG_HASH: naming.digest(dict(data))}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}


def serve_args(role: Role) -> list[str]:
    """`inferedge serve edge|cloud` on all interfaces; the rest comes from the ConfigMap."""
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


def _probe(path: str, period: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period}


def build_deployment(
    *,
    owner: Mapping[str, Any],
    role: Role,
    spec: InferencePipelineSpec,
    device: DeviceProfileSpec,
    config_hash: str,
    images: Images,
) -> Manifest:
    """The edge or cloud Deployment; pods restart when the config hash changes."""
    meta = owner["metadata"]
    pipeline, namespace = meta["name"], meta["namespace"]
    names = naming.PipelineNames(pipeline)
    labels = naming.pipeline_labels(pipeline, role)
    selector = {naming.INSTANCE_LABEL: pipeline, naming.COMPONENT_LABEL: role}
    container = _container(
        role,
        images.for_role(role, spec.model.framework),
        args=serve_args(role),
        env=[*store_env(spec.storage), *nats_env(spec.messaging)],
        resources=_resources(device),
        pull_policy=images.pull_policy,
        extra_mounts=[{"name": "cache", "mountPath": CACHE_DIR}],
    )
    container["envFrom"] = [{"configMapRef": {"name": names.config}}]
    container["ports"] = [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
    container["readinessProbe"] = _probe("/v2/health/ready", 5)
    container["livenessProbe"] = {**_probe("/v2/health/live", 10), "failureThreshold": 6}
    ref = spec.edge if role == "edge" else spec.cloud
    deployment_spec: dict[str, Any] = {
        "replicas": ref.replicas,
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {
                "labels": labels,
                "annotations": {naming.CONFIG_HASH: config_hash},
            },
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": _pod_security(),
                "containers": [container],
                "volumes": [
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "cache", "emptyDir": {}},
                ],
                **scheduling(device),
            },
        },
    }
    name = names.edge if role == "edge" else names.cloud
    metadata = _metadata(name, namespace, owner, labels)
    metadata["annotations"] = {naming.TEMPLATE_HASH: naming.digest(deployment_spec)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": deployment_spec,
    }


def build_cloud_service(*, owner: Mapping[str, Any]) -> Manifest:
    """A ClusterIP Service in front of the cloud pods (health, metrics, OIP metadata)."""
    meta = owner["metadata"]
    pipeline = meta["name"]
    names = naming.PipelineNames(pipeline)
    labels = naming.pipeline_labels(pipeline, "cloud")
    service_spec = {
        "type": "ClusterIP",
        "selector": {naming.INSTANCE_LABEL: pipeline, naming.COMPONENT_LABEL: "cloud"},
        "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
    }
    metadata = _metadata(names.cloud, meta["namespace"], owner, labels)
    metadata["annotations"] = {naming.TEMPLATE_HASH: naming.digest(service_spec)}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": service_spec}


def build_event(
    *,
    involved: Mapping[str, Any],
    type: str,
    reason: str,
    message: str,
    component: str,
    now: str,
) -> Manifest:
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


def template_hash(manifest: Mapping[str, Any]) -> str | None:
    """The hash a built (or stored) object carries for replace-if-changed decisions."""
    annotations = manifest.get("metadata", {}).get("annotations") or {}
    value = annotations.get(naming.TEMPLATE_HASH) or annotations.get(naming.CONFIG_HASH)
    return str(value) if value is not None else None
