"""NATS subjects: `inferedge.<namespace>.<pipeline>.<verb>`.

A site of several edge pools adds two: its dispatcher sends each request to one replica at
`P.infer.<pool>.<replica>` (P is `inferedge.<namespace>.<pipeline>`), and every replica
announces itself, its load and its measured speed with a heartbeat to `P.beat`.

Namespace and pipeline are Kubernetes names used as single subject tokens, so both must be
DNS-1123 labels: lowercase letters, digits and `-`, starting and ending with a letter or digit,
at most 63 characters, and no dots (a dot would split the token). Verbs come from a fixed set.
Chunked transfers need no subject of their own: their streams run over per-request inboxes.
"""

from __future__ import annotations

import re
from typing import Final, Literal, get_args

from inferedge.transport.errors import TransportError

ROOT: Final = "inferedge"
# Stands for any namespace or pipeline in a subject pattern (a NATS single-token wildcard).
ANY: Final = "*"

Verb = Literal["offload", "infer", "reload", "beat"]
VERBS: Final[tuple[str, ...]] = get_args(Verb)

# Replicas serving one subject share its messages when they subscribe in this queue group.
QUEUE_GROUP: Final = "inferedge-workers"

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class SubjectError(TransportError):
    """A subject token is not a valid DNS-1123 label or the verb is unknown."""


def subject(namespace: str, pipeline: str, verb: str) -> str:
    """The subject a pipeline's `verb` is served on; SubjectError names the bad token."""
    _check_label("namespace", namespace)
    _check_label("pipeline", pipeline)
    if verb not in VERBS:
        raise SubjectError(f"verb {verb!r}: expected one of {', '.join(VERBS)}")
    return f"{ROOT}.{namespace}.{pipeline}.{verb}"


def reload_subject(namespace: str, pipeline: str, role: str) -> str:
    """The subject where a pipeline's `role` ('edge' or 'cloud') servers take reload commands.

    One subject per role, so a publisher can reload the cloud replicas before the edges.
    """
    if role not in ("edge", "cloud"):
        raise SubjectError(f"role {role!r}: expected edge or cloud")
    return f"{subject(namespace, pipeline, 'reload')}.{role}"


def replica_subject(namespace: str, pipeline: str, pool: str, replica: str) -> str:
    """Where one replica of an edge pool takes the requests a site's dispatcher sends it."""
    _check_label("pool", pool)
    _check_label("replica", replica)
    return f"{subject(namespace, pipeline, 'infer')}.{pool}.{replica}"


def subject_pattern(namespace: str, pipeline: str, verb: str) -> str:
    """Like `subject`, but `namespace` and `pipeline` may each be ANY (`*`): a pattern for
    permissions that cover every namespace or pipeline."""
    for what, value in (("namespace", namespace), ("pipeline", pipeline)):
        if value != ANY:
            _check_label(what, value)
    if verb not in VERBS:
        raise SubjectError(f"verb {verb!r}: expected one of {', '.join(VERBS)}")
    return f"{ROOT}.{namespace}.{pipeline}.{verb}"


def _check_label(what: str, value: str) -> None:
    if not _LABEL.fullmatch(value):
        raise SubjectError(
            f"{what} {value[:80]!r}: expected a DNS-1123 label (lowercase letters, digits and "
            "'-', starting and ending with a letter or digit, at most 63 characters, no dots)"
        )
