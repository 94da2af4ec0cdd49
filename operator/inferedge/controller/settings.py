"""Operator settings: kopf's (finalizer, annotations, peering, events) and inferedge's options."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final

import kopf

from inferedge.controller.naming import PREFIX
from inferedge.controller.pods import CLOCK_AGENT_DIR, Images, NatsSecrets

FINALIZER: Final = f"{PREFIX}/finalizer"
DEFAULT_PEERING: Final = "inferedge"
# How often every pipeline is reconciled even without events (a safety net: Secrets and the
# store are not watched), and how often DeviceProfiles check their re-profiling schedule.
RESYNC_INTERVAL_S: Final = 300.0
PROFILE_CHECK_INTERVAL_S: Final = 600.0
# How often the edge pods' reports (/tuning, /adaptation) and the site dispatchers' counters
# (/distribution) are read into the status, by default.
TUNING_INTERVAL_S: Final = 30.0
# Attempts to delete a pipeline's artifacts before letting the object go anyway (the store may
# be gone for good); each failure posts a Warning Event naming what was left behind.
CLEANUP_ATTEMPTS: Final = 5


@dataclass(frozen=True)
class OperatorOptions:
    """What `inferedge operator` passes to the handlers (through kopf's memo)."""

    images: Images = field(default_factory=Images)
    # The Secrets edge and cloud pods sign in to NATS with (in each pipeline's namespace).
    nats_secrets: NatsSecrets = field(default_factory=NatsSecrets)
    reporting_component: str = "inferedge-operator"
    # Set when neither --peering nor --standalone was given: kopf then uses this peering object
    # if it exists and runs alone (with a warning) if it does not.
    auto_peering: str | None = None
    # How often the edge pods' `/tuning` and `/adaptation`, and the dispatchers' `/distribution`,
    # are read into each pipeline's status.
    tuning_interval_s: float = TUNING_INTERVAL_S
    # The node directory the clock agent listens in (the chart's clockAgent.socketDir).
    clock_agent_dir: str = CLOCK_AGENT_DIR


def configure(settings: kopf.OperatorSettings, options: OperatorOptions) -> None:
    """Apply inferedge's conventions to kopf's settings (called at startup)."""
    settings.persistence.finalizer = FINALIZER
    # Handler progress and the last-handled spec live in annotations under inferedge.io/, not in
    # status.kopf: a CRD with a structural schema would prune an unknown status field.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    # The operator posts its own Events (phase changes, failures); kopf adds Events only for
    # its warnings and errors, e.g. a handler that failed.
    settings.posting.enabled = True
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = options.reporting_component
    if options.auto_peering is not None:
        settings.peering.name = options.auto_peering
    # Watches are restarted now and then so a silently dead connection cannot stall the operator.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
