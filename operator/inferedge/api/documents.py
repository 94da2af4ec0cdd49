"""Reading YAML files: multi-document YAML holding InferencePipelines and DeviceProfiles
(what a user would `kubectl apply`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from inferedge.api.base import GROUP_VERSION
from inferedge.api.device_profile import DeviceProfile
from inferedge.api.pipeline import InferencePipeline
from inferedge.core.errors import InferedgeError, describe_validation_error

KINDS: dict[str, type[InferencePipeline] | type[DeviceProfile]] = {
    "InferencePipeline": InferencePipeline,
    "DeviceProfile": DeviceProfile,
}


class DocumentError(InferedgeError):
    """A YAML file is not valid YAML, or holds an object inferedge cannot use."""


@dataclass(frozen=True)
class Documents:
    """The inferedge objects of one YAML file, in file order."""

    pipelines: tuple[InferencePipeline, ...]
    profiles: tuple[DeviceProfile, ...]

    def profile(self, name: str, namespace: str, source: str) -> DeviceProfile:
        """The DeviceProfile `name` in `namespace`; a one-line error if the file lacks it."""
        for p in self.profiles:
            if p.metadata.name == name and p.metadata.namespace == namespace:
                return p
        have = ", ".join(p.metadata.name for p in self.profiles) or "none"
        raise DocumentError(
            f"{source}: no DeviceProfile {name!r} in namespace {namespace!r} (found: {have})"
        )


def _document(raw: Any, where: str) -> InferencePipeline | DeviceProfile:
    if not isinstance(raw, dict):
        raise DocumentError(f"{where}: expected a mapping, got {type(raw).__name__}")
    api_version, kind = raw.get("apiVersion"), raw.get("kind")
    if api_version != GROUP_VERSION:
        raise DocumentError(f"{where}: apiVersion is {api_version!r}, expected {GROUP_VERSION!r}")
    model = KINDS.get(str(kind))
    if model is None:
        raise DocumentError(
            f"{where}: kind is {kind!r}, expected one of {', '.join(sorted(KINDS))}"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        name = (raw.get("metadata") or {}).get("name", "?")
        raise DocumentError(describe_validation_error(exc, f"{where} {kind} {name!r}")) from None


def parse_documents(text: str, source: str) -> Documents:
    """Every InferencePipeline and DeviceProfile in `text` (multi-document YAML)."""
    try:
        raws = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise DocumentError(f"{source}: not valid YAML{at}") from None
    objects = [_document(raw, f"{source} document {i + 1}") for i, raw in enumerate(raws)]
    return Documents(
        pipelines=tuple(o for o in objects if isinstance(o, InferencePipeline)),
        profiles=tuple(o for o in objects if isinstance(o, DeviceProfile)),
    )
