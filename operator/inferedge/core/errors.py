"""User-facing errors: each renders as one line that names the field and what was expected."""

from __future__ import annotations

from pydantic import ValidationError


class InferedgeError(Exception):
    """An error caused by user input; the CLI prints its message on one line and exits 2."""


class ProfileError(InferedgeError):
    """A device profile is malformed, of another schema version, or inconsistent."""


class PlanningError(InferedgeError):
    """The planner got inputs it cannot use (unknown batch size, mismatched profiles, ...)."""


class InfeasibleError(PlanningError):
    """No cut point or exit choice satisfies the user's constraints."""


class ModelRefError(InferedgeError):
    """A model reference (zoo name, module:callable, .pt2 path) is not usable."""


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """Condense a pydantic error into one line: `source: field.path: message`.

    Only the first problem is named (with a count of the others) so the line stays readable.
    """
    errors = exc.errors(include_url=False)
    if not errors:
        return f"{source}: invalid"
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"]) or "(root)"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{source}: {loc}: {first['msg']}{more}"


def one_line(exc: BaseException) -> str:
    """An exception as one line for a user-facing error: its type and first message line."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
