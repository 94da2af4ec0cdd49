"""Posting Kubernetes Events about the operator's objects."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from inferedge.controller.builders import build_event
from inferedge.controller.children import now_rfc3339
from inferedge.controller.kube import Kube, KubeError
from inferedge.controller.views import Body
from inferedge.core.conditions import Event


@dataclass(frozen=True)
class EventPoster:
    """Posts Events with the operator's own client, as `component`."""

    kube: Kube
    component: str
    logger: logging.Logger

    async def post(self, involved: Body, event: Event) -> None:
        """Post an Event about `involved`; a failure is logged, never raised (Events are advisory).

        Posted with the operator's own client rather than kopf's queue, so reconciles started
        outside a kopf handler (the periodic resync) can post too.
        """
        obj = build_event(
            involved=involved,
            type=event.type,
            reason=event.reason,
            message=event.message,
            component=self.component,
            now=now_rfc3339(),
        )
        try:
            await self.kube.create(obj)
        except KubeError as exc:
            self.logger.warning("could not post Event %s: %s", event.reason, exc)
