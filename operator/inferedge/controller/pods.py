"""Pieces every child pod shares: images, owner references, placement, env and lockdown.

Pods run as non-root with a read-only root filesystem, no capabilities and the RuntimeDefault
seccomp profile; writable paths are emptyDirs. Credentials reach containers only as
`valueFrom.secretKeyRef`, never as values.

On NATS, an edge pod signs in as the edge identity and a cloud pod as the cloud identity
(`inferedge.core.identities`), from the Secrets `NatsSecrets` names in the pipeline's
namespace, unless the pipeline names its own Secret in `spec.messaging.secretRef`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from inferedge import __version__
from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.pipeline import MessagingSpec, StorageSpec
from inferedge.core.identities import inbox_prefix
from inferedge.core.roles import Role
from inferedge.core.zoo import Framework

KubeObject = dict[str, Any]
"""A Kubernetes object as the API takes it: a plain dict."""

HTTP_PORT: Final = 8080
CACHE_DIR: Final = "/var/cache/inferedge"
TMP_DIR: Final = "/tmp"
CLOCK_AGENT_DIR: Final = "/run/inferedge"
"""Where an edge pod finds the clock agent's socket (the serve command's default), and the
node directory the agent listens in by default (the chart's clockAgent.socketDir)."""
NON_ROOT_UID: Final = 65532
PodIdentity = Literal["edge", "cloud", "dispatcher"]
"""The NATS identities pods sign in as (`inferedge.core.identities`)."""
EDGE_DEFAULT_SELECTOR: Final = {"kubernetes.io/arch": "arm64"}

# Secret keys the operator reads (documented in docs/controller.md).
S3_ACCESS_KEY: Final = "accessKey"
S3_SECRET_KEY: Final = "secretKey"
NATS_SECRET_KEYS: Final = (
    ("INFEREDGE_NATS_USER", "user"),
    ("INFEREDGE_NATS_PASSWORD", "password"),
    ("INFEREDGE_NATS_TOKEN", "token"),
)
NATS_INBOX_PREFIX_ENV: Final = "INFEREDGE_NATS_INBOX_PREFIX"


@dataclass(frozen=True)
class NatsSecrets:
    """Names of the Secrets (keys `user` and `password`) with the NATS sign-in of the edge,
    cloud and dispatcher identities, one of each in every namespace where pipelines run.

    The chart writes them (`natsAuth`); the defaults are the names it uses. A pod whose Secret
    is missing starts without NATS credentials, which only a server without authorization
    accepts: an authorizing one refuses it, and the pod says so in its log.
    """

    edge: str = "inferedge-nats-edge"
    cloud: str = "inferedge-nats-cloud"
    dispatcher: str = "inferedge-nats-dispatcher"

    def for_role(self, role: PodIdentity) -> str:
        """The Secret of the identity that pods of `role` sign in as."""
        return {"edge": self.edge, "cloud": self.cloud, "dispatcher": self.dispatcher}[role]


DEFAULT_NATS_SECRETS: Final = NatsSecrets()


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


def object_metadata(
    name: str, namespace: str, owner: Mapping[str, Any], labels: Mapping[str, str]
) -> dict[str, Any]:
    """Name, namespace, labels and the owner reference of a child."""
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


def nats_env(
    messaging: MessagingSpec, role: PodIdentity, secrets: NatsSecrets = DEFAULT_NATS_SECRETS
) -> list[dict[str, Any]]:
    """NATS sign-in of a `role` pod: from the pipeline's own Secret in spec.messaging if it
    names one, else from its role's Secret; every key is optional in the Secret. The inbox
    prefix (not a secret) is the one the role's permissions allow."""
    prefix = {"name": NATS_INBOX_PREFIX_ENV, "value": inbox_prefix(role)}
    keys: tuple[tuple[str, str], ...]
    if messaging.secret_ref is not None:
        secret, keys = messaging.secret_ref.name, NATS_SECRET_KEYS
    else:
        secret, keys = secrets.for_role(role), NATS_SECRET_KEYS[:2]
    return [
        *(
            {
                "name": var,
                "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}},
            }
            for var, key in keys
        ),
        prefix,
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


def container_resources(device: DeviceProfileSpec) -> dict[str, Any]:
    """The container resources a DeviceProfile asks for."""
    out: dict[str, Any] = {}
    if device.resources.requests:
        out["requests"] = dict(device.resources.requests)
    if device.resources.limits:
        out["limits"] = dict(device.resources.limits)
    return out


def pod_security() -> dict[str, Any]:
    """Non-root, fixed IDs and the RuntimeDefault seccomp profile."""
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


def build_container(
    name: str,
    image: str,
    *,
    args: list[str],
    env: list[dict[str, Any]],
    resources: dict[str, Any],
    pull_policy: str,
    extra_mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An `inferedge` container, locked down, with a writable /tmp."""
    built: dict[str, Any] = {
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
        built["resources"] = resources
    return built


def build_job(
    *,
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    labels: Mapping[str, str],
    container: dict[str, Any],
    placement: dict[str, Any],
    backoff_limit: int,
) -> KubeObject:
    """A Job that runs `container` once on `placement`'s nodes."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": object_metadata(name, namespace, owner, labels),
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                    **placement,
                },
            },
        },
    }
