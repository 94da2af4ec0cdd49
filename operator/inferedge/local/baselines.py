"""The baselines of a plain `inferedge run`: edge-only and cloud-only through the same servers.

After the thresholds are replayed, an edge pinned to each baseline's route (`serve --pin-point
K/-/-` and `0/-/-`, loading the whole chain) replays the same test split against the same
cloud, broker and emulated link. The pipeline's measured mean is then compared with each
baseline measured in the same run, not with a prediction; each baseline's own prediction
(`core.planner.baseline_plan`) stands beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from pydantic import BaseModel, ConfigDict

from inferedge.local.replay import Replayed, percentile

ROUTES: Final = {"edge_only": "{final}/-/-", "cloud_only": "0/-/-"}
"""Each baseline's pinned point; `{final}` is the model's final cut."""


class BaselineRow(BaseModel):
    """One baseline's replay of the test split, next to its prediction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    point: str
    samples: int
    accuracy: float
    latency_mean_ms: float
    latency_p95_ms: float
    client_p50_ms: float
    offload_bytes_per_request: float
    predicted_latency_ms: float
    degraded: int


def baseline_row(name: str, point: str, replayed: Replayed, predicted_ms: float) -> BaselineRow:
    """One baseline's figures from its replay."""
    served = replayed.served
    n = len(served)
    server = [s.server_ms for s in served]
    return BaselineRow(
        name=name,
        point=point,
        samples=n,
        accuracy=sum(s.prediction == s.label for s in served) / n if n else 0.0,
        latency_mean_ms=sum(server) / n if n else 0.0,
        latency_p95_ms=percentile(server, 95),
        client_p50_ms=percentile([s.client_ms for s in served], 50),
        offload_bytes_per_request=replayed.offload_bytes / n if n else 0.0,
        predicted_latency_ms=predicted_ms,
        degraded=sum(s.degraded for s in served),
    )


def baselines_markdown(
    rows: Sequence[BaselineRow], threshold: float, mean_ms: float, accuracy: float
) -> list[str]:
    """The baselines section of the measured report: each baseline, and the pipeline at
    `threshold` (its measured `mean_ms` and `accuracy`) against it."""
    if not rows:
        return []
    lines = [
        "## Baselines, measured in the same run",
        "",
        "The same test split through the same servers, broker and emulated link, with the edge "
        "pinned to the whole model (edge-only) or shipping the raw input (cloud-only), no exits.",
        "",
        "| baseline | point | accuracy | mean ms (pred.) | p95 ms | client p50 ms | bytes/req | "
        f"c_thr {threshold:.2f} mean ÷ baseline's | accuracy vs baseline |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = mean_ms / r.latency_mean_ms if r.latency_mean_ms else 0.0
        lines.append(
            f"| {r.name} | {r.point} | {r.accuracy:.2%} | {r.latency_mean_ms:.1f} "
            f"({r.predicted_latency_ms:.1f}) | {r.latency_p95_ms:.1f} | {r.client_p50_ms:.1f} | "
            f"{r.offload_bytes_per_request:,.0f} | {ratio:.2f} | "
            f"{(accuracy - r.accuracy) * 100:+.2f} points |"
        )
    return [*lines, ""]
