"""Parsing versioned JSON documents (profiles, plans, manifests) with one-line errors."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from inferedge.core.errors import InferedgeError, describe_validation_error

Doc = TypeVar("Doc", bound=BaseModel)


def parse_versioned(
    data: str | bytes,
    source: str,
    model: type[Doc],
    *,
    version: str,
    error: type[InferedgeError],
    hint: str,
) -> Doc:
    """Parse `data` as a `model` document of schema `version`.

    The version is checked before the fields, so a document of another version gets one line
    that says so (and `hint`, what to re-run) instead of a list of field errors.
    """
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as exc:
        raise error(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise error(f"{source}: not valid JSON (not UTF-8 text)") from None
    if not isinstance(raw, dict):
        raise error(f"{source}: expected a JSON object, got {type(raw).__name__}")
    found = raw.get("schema_version")
    if found != version:
        raise error(f"{source}: schema_version is {found!r}, expected {version!r} ({hint})")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise error(describe_validation_error(exc, source)) from None
