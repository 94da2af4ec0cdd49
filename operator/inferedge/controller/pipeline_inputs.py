"""A pipeline's inputs, checked before any step: its spec and the DeviceProfiles it names.

Each problem becomes a `Failure` that names the field and what to do, so the pipeline waits with
one line in its conditions instead of failing a step later.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from inferedge.api.base import DNS_LABEL
from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.controller import naming
from inferedge.controller.cache import ObjectCache
from inferedge.controller.views import PipelineView
from inferedge.core.errors import describe_validation_error
from inferedge.core.facts import Failure, waits
from inferedge.core.roles import Role

_DNS_LABEL = re.compile(DNS_LABEL)


def validated_spec(
    pipeline: PipelineView,
) -> tuple[InferencePipelineSpec | None, Failure | None]:
    """The pipeline's spec, or why it waits: a name too long, a spec that does not validate,
    or a site's name that cannot be a NATS subject token."""
    problem = naming.name_problem(pipeline.meta.name, "InferencePipeline")
    if problem:
        return None, waits("InvalidName", problem, "recreate the pipeline with a shorter name")
    try:
        spec = InferencePipelineSpec.model_validate(pipeline.spec)
    except ValidationError as exc:
        text = describe_validation_error(exc, "spec")
        return None, waits("InvalidSpec", text, "fix the spec and apply it again")
    if spec.distribution is not None and not _DNS_LABEL.fullmatch(pipeline.meta.name):
        return None, waits(
            "InvalidName",
            f"metadata.name: a pipeline with spec.distribution names its site's NATS subjects "
            f"and must be a DNS-1123 label (no dots), got {pipeline.meta.name!r}",
            "recreate the pipeline with such a name",
        )
    return spec, None


def cloud_profile(
    objects: ObjectCache, namespace: str, spec: InferencePipelineSpec
) -> tuple[str, DeviceProfileSpec] | Failure:
    """The cloud's DeviceProfile, or why the pipeline waits for it."""
    return device_profile(objects, namespace, spec.cloud.profile, "spec.cloud.profile", "cloud")


def pool_field(spec: InferencePipelineSpec, index: int) -> str:
    """Where the `index`-th pool's DeviceProfile is named in the spec."""
    if spec.edge.pools is None:
        return spec.edge.reference_field()
    return f"spec.edge.pools[{index}].profile"


def device_profile(
    objects: ObjectCache, namespace: str, name: str, field_name: str, role: Role
) -> tuple[str, DeviceProfileSpec] | Failure:
    """The DeviceProfile `name` that `field_name` names, of role `role`."""
    view = objects.device_profile((namespace, name))
    if view is None:
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
        device = DeviceProfileSpec.model_validate(view.spec)
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
