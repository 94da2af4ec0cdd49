"""The edge's operating point, following the link: the configuration map read at each link
estimate, with hysteresis, and the switch made through the dataplane's hot swap.

A switch replaces the dataplane's partition (a view of the space's loaded files,
`Partition.at`) and its c_thr together, between two requests: a request reads both when it
starts, so none mixes two points, and none is dropped, since nothing is unloaded. Offloads name
their point, so the cloud continues each from the split it was cut at, whichever the edge serves
by the time it answers.

Three modes serve the same space:
- `follow`: the estimate from the edge's own offloads and probes (`runtime.link_estimator`),
  through the map and the switch policy (`core.link_switch`);
- `off`: the point for the declared link, kept (the static plan);
- `oracle`: the point for the true link of the moment, at once (an emulated link's trace: the
  bound a perfect estimator would reach).

A pinned adapter (`pin`, with `off`) serves one route of the space whatever the link: the
edge-only and cloud-only baselines of `inferedge run` are the routes `K/-/-` and `0/-/-`.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from inferedge.api.adaptation import AdaptationReport, AdaptMode, PointReport
from inferedge.core.config_map import ConfigurationMap, MapEntry
from inferedge.core.link import Link
from inferedge.core.link_switch import Cell, SwitchPolicy, SwitchState, observe
from inferedge.core.manifest import Manifest
from inferedge.core.operating_space import OperatingPoint, PointFigures
from inferedge.core.point_text import point_label
from inferedge.core.space import (
    SpaceError,
    SpaceInputs,
    check_point,
    corrected,
    edge_factor,
    parse_space,
)
from inferedge.dnn.artifacts import verified_path
from inferedge.dnn.protocols import ArtifactLoadError
from inferedge.runtime.messages import CloudAnswer
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.partition import Partition, PartitionError
from inferedge.runtime.served import Served
from inferedge.runtime.step_timings import REQUEST, StepKey, StepTimings

log = logging.getLogger(__name__)


def adaptation_handler(adapter: Adapter) -> Callable[[web.Request], Awaitable[web.Response]]:
    """GET /adaptation: the adapter's report as JSON."""

    async def handle(_: web.Request) -> web.Response:
        return web.json_response(text=adapter.report().model_dump_json())

    return handle


def read_space(manifest: Manifest, root: Path) -> SpaceInputs:
    """The space file of `manifest`'s set from the partition cache at `root`, verified against
    the manifest's digest (`load_partition` fetched it with the edge's files)."""
    if manifest.space is None:
        raise PartitionError(f"plan {manifest.plan.hash} is not an operating space")
    name = manifest.space.file
    try:
        path = verified_path(root, name, manifest.digests()[name])
    except ArtifactLoadError as exc:
        raise PartitionError(str(exc)) from None
    inputs = parse_space(path.read_bytes(), str(path))
    if inputs.plan_hash != manifest.plan.hash:
        raise PartitionError(f"{path}: holds the space of plan {inputs.plan_hash}, not this set's")
    return inputs


MIN_CLOUD_ANSWERS = 5
"""Single-row offloads the cloud must have answered before its reported times count."""

MIN_TAIL_REQUESTS = 40
"""Single-row requests (of points whose predictions the adapter still holds) that must have
been answered before the tail of their paths counts."""

PREDICTIONS_KEPT = 8
"""Points served lately whose predictions are kept to measure the tail against. The requests
of all of them count, each against its own point's paths, so a switch does not restart the
count and one noisy point does not make the factor swing."""

DEFAULT_TAIL_QUANTILE = 0.95
"""The quantile of the tail for objectives that name none (their choice does not test it)."""

CLOUD_WINDOW = 21
"""The cloud's factor is the median ratio of its last this many answers. A median, not a
running mean: on an edge-heavy point the rare offloads find a cloud idle for seconds and report
2-3x its profiled time, and a mean of those made every offloading point look too slow to go
back to when the link recovered (measured: an edge kept its 1 Mbps point for the whole 8 Mbps
third of the step trace)."""


@dataclass(frozen=True)
class Rebuilt:
    """A configuration map rebuilt from measured times, ready to install."""

    map: ConfigurationMap
    points: int
    edge_factor: float
    cloud_factor: float
    overhead_ms: float
    tail_factor: float


class Adapter:
    """Keeps `served` on the configuration map's point for the link it is told of."""

    def __init__(
        self,
        served: Served,
        space: Partition,
        inputs: SpaceInputs,
        *,
        mode: AdaptMode = "follow",
        policy: SwitchPolicy | None = None,
        pin: OperatingPoint | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._served = served
        self._space = space
        self._inputs = inputs
        self._pin = pin
        self.mode: AdaptMode = mode
        self.corrections = 0
        # Reported / predicted cloud compute per offload, the most recent ones.
        self._cloud_ratios: deque[float] = deque(maxlen=CLOUD_WINDOW)
        # The oracle knows the true link: hysteresis would only delay it.
        self._policy = SwitchPolicy(1, 0.0) if mode == "oracle" else (policy or SwitchPolicy())
        self._clock = clock
        points = self._space_points(inputs)
        # The map served and the corrections behind it: the space file's own until the first.
        self._current = Rebuilt(
            inputs.configuration_map(points), len(points), 1.0, 1.0, 0.0, inputs.tail_factor
        )
        self._cloud_expected = {p.point: p.cloud_per_offload_ms for p in points}
        self._views: dict[OperatingPoint, Partition] = {}
        # The served points' figures (with the tail they carry) the tail is measured against.
        self._predicted: dict[OperatingPoint, tuple[PointFigures, float]] = {}
        self._link = self._latest = inputs.link
        cell = self.map.cell(inputs.link)
        self._state = SwitchState(cell, clock())
        self._apply(cell)

    @property
    def map(self) -> ConfigurationMap:
        """The configuration map served now."""
        return self._current.map

    @property
    def metrics(self) -> Metrics:
        """The served dataplane's metrics, where the point is published."""
        return self._served.metrics

    @property
    def entry(self) -> MapEntry:
        """The map entry served now."""
        return self.map.entry(*self._state.serving)

    @property
    def switches(self) -> int:
        """Moves made so far."""
        return self._state.switches

    def observe(self, link: Link) -> bool:
        """Take a link estimate (or, for the oracle, the true link); True if the edge moved.
        `off` keeps its point whatever it is told."""
        self._latest = link
        if self.mode == "off":
            return False
        before = self._state
        self._state = observe(before, self.map.cell(link), self._clock(), self._policy)
        if self._state.serving == before.serving:
            return False
        self._link = link
        self._apply(self._state.serving)
        self.metrics.operating_switches.inc()
        log.info(
            "link %.3g Mbps, %.0f ms: switched to %s",
            link.bandwidth_mbps,
            link.rtt_ms,
            point_label(self.entry.figures.point),
        )
        return True

    def observe_cloud(self, point: OperatingPoint | None, answer: CloudAnswer) -> None:
        """Take the cloud's reported compute for one offload of `point`, against what the
        space file predicts for an offload of that point. Only single-row batches count: the
        profile's times are of one row."""
        expected = self._cloud_expected.get(point, 0.0) if point is not None else 0.0
        if answer.batch_size != 1 or expected <= 0.0:
            return
        self._cloud_ratios.append(answer.compute_ms / expected)

    @property
    def timings(self) -> StepTimings:
        """What the space's steps measured as served."""
        return self._space.timings

    def rebuilt(self, measured: Mapping[StepKey, float]) -> Rebuilt | None:
        """The map rebuilt from the edge's measured step times (`runtime.step_timings`) and
        the cloud's reported ones (`observe_cloud`), the space file's times corrected by them;
        None before either was measured. Pure computation, safe off the event loop."""
        segments = {(a, b): ms for (kind, a, b), ms in measured.items() if kind == "segment"}
        ratios = self._cloud_ratios
        ratio = statistics.median(ratios) if len(ratios) >= MIN_CLOUD_ANSWERS else None
        overhead = measured.get(REQUEST)
        tail = self._tail()
        if not segments and ratio is None and overhead is None and tail is None:
            return None
        heads = {a: ms for (kind, a, _), ms in measured.items() if kind == "head"}
        cloud = 1.0 if ratio is None else ratio
        inputs = corrected(
            self._inputs,
            segments,
            heads,
            cloud_factor=cloud,
            overhead_ms=overhead,
            tail_factor=tail if tail is not None else self._current.tail_factor,
        )
        points = self._space_points(inputs)
        return Rebuilt(
            inputs.configuration_map(points),
            len(points),
            edge_factor(self._inputs, inputs),
            cloud,
            inputs.overhead_ms,
            inputs.tail_factor,
        )

    def _tail(self) -> float | None:
        """The served requests' time over their path's prediction (without the tail that
        prediction carried) at the objective's quantile; None until `MIN_TAIL_REQUESTS` of
        points still held (`PREDICTIONS_KEPT`) were answered."""
        ratios = []
        for point, index, ms in self._space.requests.snapshot():
            known = self._predicted.get(point) if point is not None else None
            if known is None:
                continue
            paths, applied = known[0].paths, known[1]
            if index < len(paths) and paths[index].compute_ms > 0.0:
                ratios.append(ms * applied / paths[index].compute_ms)
        ratios.sort()
        if len(ratios) < MIN_TAIL_REQUESTS:
            return None
        quantile = self._inputs.objective.deadline_quantile or DEFAULT_TAIL_QUANTILE
        # Nearest rank: an observed ratio, never an interpolation between two.
        return ratios[math.ceil(quantile * len(ratios)) - 1]

    def install(self, rebuilt: Rebuilt) -> bool:
        """Serve from `rebuilt` on: the new map's point for the cell served; True if that
        point changed."""
        self._current = rebuilt
        self.corrections += 1
        self.metrics.operating_corrections.inc()
        served = self._served.partition
        if served is not None and served.point == self.entry.figures.point:
            self._remember()
            return False
        self._apply(self._state.serving)
        return True

    def _remember(self) -> None:
        """Hold the served point's figures as the map predicts them now."""
        figures = self.entry.figures
        self._predicted.pop(figures.point, None)
        self._predicted[figures.point] = (figures, self._current.tail_factor)
        while len(self._predicted) > PREDICTIONS_KEPT:
            self._predicted.pop(next(iter(self._predicted)))

    def correct(self, measured: Mapping[StepKey, float]) -> bool:
        """`rebuilt` then `install`, in one go."""
        rebuilt = self.rebuilt(measured)
        return rebuilt is not None and self.install(rebuilt)

    def _space_points(self, inputs: SpaceInputs) -> list[PointFigures]:
        """The space's points, or the pinned route at every threshold (the map then picks the
        route's best threshold per state)."""
        if self._pin is None:
            return inputs.points()
        manifest = self._space.manifest
        assert manifest.space is not None  # a space's partition, as `read_space` checked
        try:
            check_point(manifest.space, manifest.plan.final_cut, self._pin)
        except SpaceError as exc:
            raise PartitionError(f"pinned point: {exc}") from None
        return inputs.route_points(self._pin)

    def _apply(self, cell: Cell) -> None:
        point = self.map.entry(*cell).figures.point
        view = self._views.get(point)
        if view is None:
            view = self._views[point] = self._space.at(point)
        self._served.swap(view, threshold=point.threshold)
        entry = self.map.entry(*cell)
        self._served.unmet = None if entry.feasible else self._inputs.objective.kind
        self.metrics.operating_split.set(point.split)
        self.metrics.operating_threshold.set(point.threshold)
        self._remember()

    def report(self) -> AdaptationReport:
        """What GET /adaptation answers."""
        entry = self.entry
        point = entry.figures.point
        return AdaptationReport(
            mode=self.mode,
            point=PointReport(
                split=point.split,
                edge_exits=point.edge_exits,
                cloud_exits=point.cloud_exits,
                threshold=point.threshold,
                accuracy=entry.figures.accuracy,
                latency_ms=entry.latency_ms,
                feasible=entry.feasible,
            ),
            link=self._link,
            latest=self._latest,
            switches=self.switches,
            corrections=self.corrections,
            edge_time_factor=round(self._current.edge_factor, 3),
            cloud_time_factor=round(self._current.cloud_factor, 3),
            overhead_ms=round(self._current.overhead_ms, 3),
            tail_factor=round(self._current.tail_factor, 3),
            points=self._current.points,
            states=len(self.map.entries),
        )
