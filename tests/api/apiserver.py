"""What the API server does with a custom object before storing it, as far as a test can.

No kube-apiserver can be had here, so this repeats its steps on a CRD's openAPIV3Schema:
defaulting, strict field validation (unknown fields are errors, as with `kubectl apply`'s
default `--validate=strict`), OpenAPI v3.0 value validation (jsonschema's Draft 4 has the same
boolean exclusive bounds) and the `x-kubernetes-validations` CEL rules, evaluated with the
`cel-python` interpreter when it is installed.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

Schema = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
CEL_KEY = "x-kubernetes-validations"


def load_crd_schema(kind: str) -> Schema:
    """The committed CRD's openAPIV3Schema for `kind`."""
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            schema: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(kind)


def _drop_nulls(value: Any) -> Any:
    # The API server prunes nulls of non-nullable fields, and CEL treats them as absent.
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def apply_defaults(schema: Schema, value: Any) -> Any:
    """`value` with schema defaults filled in, outermost first, like the API server."""
    if isinstance(value, dict):
        props = schema.get("properties")
        if props:
            out = dict(value)
            for name, prop in props.items():
                if name not in out and "default" in prop:
                    out[name] = copy.deepcopy(prop["default"])
            return {k: apply_defaults(props.get(k, {}), v) for k, v in out.items()}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return {k: apply_defaults(extra, v) for k, v in value.items()}
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def _strict(schema: Any) -> Any:
    """The schema with unknown fields forbidden wherever the server would reject them."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def schema_errors(schema: Schema, obj: Schema) -> list[str]:
    """OpenAPI and unknown-field errors, each as `path: message`."""
    strict = _strict(schema)
    strict["properties"]["metadata"] = {"type": "object"}
    validator = jsonschema.Draft4Validator(strict)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(obj)
    ]


@cache
def _program(rule: str) -> Any:
    import celpy  # the interpreter is optional: callers skip when it is missing

    env = celpy.Environment()
    return env.program(env.compile(rule))


def compile_rule(rule: str) -> None:
    """Parse and compile one CEL rule; raises on a syntax error."""
    _program(rule)


def _evaluate(rule: str, value: Any) -> bool:
    import celpy

    result = _program(rule).evaluate({"self": celpy.json_to_cel(value)})
    if isinstance(result, Exception):
        raise result
    return bool(result)


def cel_errors(schema: Schema, value: Any, path: str = "") -> list[str]:
    """Messages of the CEL rules `value` breaks, each as `path: message`."""
    errors: list[str] = []
    for rule in schema.get(CEL_KEY, []):
        if not _evaluate(rule["rule"], value):
            errors.append(f"{path or '(root)'}: {rule['message']}")
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key) if props else (extra if isinstance(extra, dict) else None)
            if sub is not None:
                errors += cel_errors(sub, item, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += cel_errors(schema["items"], item, f"{path}[{index}]")
    return errors


def admit(schema: Schema, obj: Schema, *, cel: bool = True) -> list[str]:
    """Every reason the API server would refuse `obj` (empty when it would store it)."""
    obj = apply_defaults(schema, _drop_nulls(obj))
    errors = schema_errors(schema, obj)
    if cel and not errors:
        # The server runs CEL only on values that passed the schema.
        errors += cel_errors(schema, obj)
    return errors
