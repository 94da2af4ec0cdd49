"""Infer-EDGE's analysis of one model's cut points, from an edge and a cloud profile.

Per cut point: the edge's time to it (cumulative, and the segment's own), the bytes of its
output, and the edge's cumulative energy where the profile measured it. Per cut and bandwidth:
the end-to-end latency of splitting there (E(k) + T(k) + C(k, K), docs/planning.md) and the
edge's energy for it: its measured compute energy to the cut, the radio's power over the
serialisation time, and the idle power while it waits for the cloud's answer (the RTT and the
cloud's part). The two powers are the user's figures for their board (Infer-EDGE measured
them on a Jetson TX2); they are not in a profile. The best cut by latency and the best by
energy are named per bandwidth: they often differ, since the smallest tensors come late and the
edge pays for every layer it runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from inferedge.core.errors import PlanningError
from inferedge.core.link import Link
from inferedge.core.planner import build_tables
from inferedge.core.profile import MeasuredProfile

DEFAULT_BANDWIDTHS_MBPS = (8.0, 20.0)
"""Infer-EDGE's two links."""


@dataclass(frozen=True)
class CutRow:
    """One cut point as the edge sees it."""

    cut: int
    name: str
    segment_ms: float
    edge_ms: float
    output_bytes: int
    edge_energy_mj: float | None


@dataclass(frozen=True)
class SplitRow:
    """Splitting at `cut` over a link of `bandwidth_mbps`."""

    cut: int
    bandwidth_mbps: float
    transfer_ms: float
    cloud_ms: float
    latency_ms: float
    edge_energy_mj: float | None


@dataclass(frozen=True)
class Best:
    """The best cut for one bandwidth by latency, and by edge energy where it is known."""

    bandwidth_mbps: float
    by_latency: int
    by_energy: int | None


@dataclass(frozen=True)
class CutAnalysis:
    """The per-cut table, the per-split table, and the best cuts."""

    model: str
    edge_device: str
    cloud_device: str
    rtt_ms: float
    radio_w: float
    idle_w: float
    cuts: tuple[CutRow, ...]
    splits: tuple[SplitRow, ...]
    best: tuple[Best, ...]


def _check(bandwidths: Sequence[float], rtt_ms: float, radio_w: float, idle_w: float) -> None:
    if not bandwidths:
        raise PlanningError("bandwidths: expected at least one bandwidth")
    for value in bandwidths:
        if not (math.isfinite(value) and value > 0):
            raise PlanningError(f"bandwidths: expected Mbps > 0, got {value!r}")
    for name, value in (("rtt_ms", rtt_ms), ("radio_w", radio_w), ("idle_w", idle_w)):
        if not (math.isfinite(value) and value >= 0):
            raise PlanningError(f"{name}: expected a finite number >= 0, got {value!r}")


def analyze_cuts(
    edge: MeasuredProfile,
    cloud: MeasuredProfile,
    *,
    bandwidths_mbps: Sequence[float] = DEFAULT_BANDWIDTHS_MBPS,
    rtt_ms: float = 20.0,
    radio_w: float = 1.0,
    idle_w: float = 0.0,
    batch_size: int = 1,
) -> CutAnalysis:
    """Every cut point of the profiled model, and every split at every bandwidth (see the
    module docstring). Raises PlanningError for mismatched profiles or bad figures."""
    _check(bandwidths_mbps, rtt_ms, radio_w, idle_w)
    if batch_size not in edge.batch_sizes or batch_size not in cloud.batch_sizes:
        raise PlanningError(
            f"batch_size: {batch_size} was not profiled on both devices "
            f"(edge {list(edge.batch_sizes)}, cloud {list(cloud.batch_sizes)})"
        )
    t = build_tables(edge, cloud, batch_size)
    num_cuts = t.num_cuts
    energy: list[float | None] = [0.0]
    for k in range(1, num_cuts + 1):
        before, segment = energy[-1], t.edge_energy_mj[k]
        energy.append(None if before is None or segment is None else before + segment)
    cuts = tuple(
        CutRow(
            cut=k,
            name=edge.cut_points[k].name,
            segment_ms=t.edge_ms(k) - t.edge_ms(k - 1) if k else 0.0,
            edge_ms=t.edge_ms(k),
            output_bytes=t.transfer_bytes[k],
            edge_energy_mj=energy[k],
        )
        for k in range(num_cuts + 1)
    )
    # energy only where every segment was measured: without rails cut 0 (which computes
    # nothing) would be the one split with a figure, and always the "best"
    rails = all(e is not None for e in energy)
    splits: list[SplitRow] = []
    best: list[Best] = []
    for bandwidth in bandwidths_mbps:
        link = Link(bandwidth_mbps=bandwidth, rtt_ms=rtt_ms)
        rows = []
        for k in range(num_cuts + 1):
            shipped = t.transfer_bytes[k] if k < num_cuts else 0
            transfer = link.transfer_ms(shipped)
            cloud_ms = t.cloud_ms(k, num_cuts)
            wire_ms = shipped * 8.0 / (bandwidth * 1e6) * 1e3
            waiting_ms = (transfer - wire_ms) + cloud_ms
            compute = energy[k] if rails else None
            # W x ms = mJ
            edge_energy = (
                None if compute is None else compute + radio_w * wire_ms + idle_w * waiting_ms
            )
            rows.append(
                SplitRow(
                    k,
                    bandwidth,
                    transfer,
                    cloud_ms,
                    t.edge_ms(k) + transfer + cloud_ms,
                    edge_energy,
                )
            )
        splits.extend(rows)
        energies = [r.edge_energy_mj for r in rows]
        by_energy = (
            None if not rails else min(range(len(rows)), key=lambda k: (energies[k] or 0.0, k))
        )
        best.append(Best(bandwidth, min(rows, key=lambda r: (r.latency_ms, r.cut)).cut, by_energy))
    return CutAnalysis(
        model=edge.model.name,
        edge_device=edge.device.name,
        cloud_device=cloud.device.name,
        rtt_ms=rtt_ms,
        radio_w=radio_w,
        idle_w=idle_w,
        cuts=cuts,
        splits=tuple(splits),
        best=tuple(best),
    )
