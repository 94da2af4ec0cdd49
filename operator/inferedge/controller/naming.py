"""Deterministic names, labels, store keys and the hashes that key each step.

Every child a pipeline or DeviceProfile owns has a name derived from its owner and from the hash
of what it depends on, so an operator that restarts at any point finds the children it already
made instead of making them twice, and an edit that changes a hash makes a new child.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from inferedge.api.base import API_GROUP, API_VERSION
from inferedge.api.edge_pools import EdgeSpec
from inferedge.api.pipeline import InferencePipelineSpec

GROUP: Final = API_GROUP
VERSION: Final = API_VERSION
PIPELINES: Final = "inferencepipelines"
DEVICE_PROFILES: Final = "deviceprofiles"
PREFIX: Final = "inferedge.io"

# Labels every child carries, so the operator finds (and kubectl selects) what it made.
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "inferedge-operator"
NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
PIPELINE_LABEL: Final = f"{PREFIX}/pipeline"
DEVICE_PROFILE_LABEL: Final = f"{PREFIX}/device-profile"
KEY_LABEL: Final = f"{PREFIX}/key"  # the step hash a Job was made for
POOL_LABEL: Final = f"{PREFIX}/pool"  # the edge pool (spec.edge.pools) a Deployment serves

# Annotations on children: the hash of the desired object, compared to decide on a replace.
TEMPLATE_HASH: Final = f"{PREFIX}/template-hash"
CONFIG_HASH: Final = f"{PREFIX}/config-hash"
SITE_HASH: Final = f"{PREFIX}/site-hash"  # the dispatcher's site file, on its pod template

# Job names end up in pod labels, which are limited to 63 characters; the longest suffixes
# are "-export-<8 hex>" for a pipeline and "-profile-<8 hex>" for a DeviceProfile.
MAX_NAME: Final = {
    "InferencePipeline": 63 - len("-export-12345678"),
    "DeviceProfile": 63 - len("-profile-12345678"),
}


def name_problem(name: str, kind: str) -> str | None:
    """Why `name` cannot own children with derived names, or None."""
    limit = MAX_NAME[kind]
    if len(name) > limit:
        return (
            f"metadata.name: a {kind} name may have at most {limit} characters "
            f"(its Jobs' names append to it), got {len(name)}"
        )
    return None


@dataclass(frozen=True)
class PipelineNames:
    """The names of a pipeline's children."""

    pipeline: str

    @property
    def edge(self) -> str:
        """The edge Deployment."""
        return f"{self.pipeline}-edge"

    def edge_pool(self, pool: str) -> str:
        """The edge Deployment of one pool of `spec.edge.pools`."""
        return f"{self.pipeline}-edge-{pool}"

    def edge_of(self, edge: EdgeSpec, pool: str) -> str:
        """The edge Deployment serving `pool`: the single form's one pool is `edge`."""
        return self.edge if edge.pools is None else self.edge_pool(pool)

    @property
    def cloud(self) -> str:
        """The cloud Deployment and its Service."""
        return f"{self.pipeline}-cloud"

    @property
    def site(self) -> str:
        """The ConfigMap with a site's dispatcher file (spec.distribution)."""
        return f"{self.pipeline}-site"

    @property
    def dispatcher(self) -> str:
        """A site's dispatcher Deployment and its Service (spec.distribution)."""
        return f"{self.pipeline}-dispatcher"

    @property
    def config(self) -> str:
        """The runtime ConfigMap both Deployments read."""
        return f"{self.pipeline}-runtime"

    def train(self, training_key: str) -> str:
        """The training Job of one training key."""
        return f"{self.pipeline}-train-{training_key[:8]}"

    def export(self, training_key: str) -> str:
        """The export Job of one training key."""
        return f"{self.pipeline}-export-{training_key[:8]}"


def pipeline_labels(pipeline: str, component: str) -> dict[str, str]:
    """Labels of a pipeline's child."""
    return {
        NAME_LABEL: "inferedge",
        INSTANCE_LABEL: pipeline,
        COMPONENT_LABEL: component,
        MANAGED_BY_LABEL: MANAGED_BY,
        PIPELINE_LABEL: pipeline,
    }


def pool_labels(pipeline: str, pool: str) -> dict[str, str]:
    """Labels of the edge Deployment (and pods) of one pool of `spec.edge.pools`."""
    return {**pipeline_labels(pipeline, "edge"), POOL_LABEL: pool}


def profile_labels(device_profile: str, key: str) -> dict[str, str]:
    """Labels of a DeviceProfile's profiling Job."""
    return {
        NAME_LABEL: "inferedge",
        INSTANCE_LABEL: device_profile,
        COMPONENT_LABEL: "profile",
        MANAGED_BY_LABEL: MANAGED_BY,
        DEVICE_PROFILE_LABEL: device_profile,
        KEY_LABEL: key,
    }


def profile_result_label(spec: InferencePipelineSpec, key: str) -> str:
    """How a DeviceProfile's status names one profiled model: `<model>@<profiling key>`."""
    return f"{spec.model.name}@{key}"


def profile_job_name(device_profile: str, key: str) -> str:
    """The profiling Job of one (DeviceProfile, profiling key)."""
    return f"{device_profile}-profile-{key[:8]}"
