"""An operating point as text, `split/edge exits/cloud exits`, and back: the offload's header,
`serve --pin-point`, logs and reports."""

from __future__ import annotations

from typing import Final

from inferedge.core.operating_space import OperatingPoint


def point_text(point: OperatingPoint) -> str:
    """A point as `parse_point` reads it, `split/edge exits/cloud exits` (its threshold apart):
    the offload's header, `serve --pin-point`."""
    edge = ",".join(map(str, point.edge_exits)) or "-"
    cloud = ",".join(map(str, point.cloud_exits)) or "-"
    return f"{point.split}/{edge}/{cloud}"


def point_label(point: OperatingPoint) -> str:
    """A point in one short line, for logs, metrics and reports."""
    edge = ",".join(map(str, point.edge_exits)) or "-"
    cloud = ",".join(map(str, point.cloud_exits)) or "-"
    return f"split {point.split}, exits {edge} | {cloud}, c_thr {point.threshold:g}"


MAX_POINT_CHARS: Final = 64
"""The longest point text accepted (`parse_point`): 3 exits a side with room to spare."""


def parse_point(text: str, threshold: float = 0.0) -> OperatingPoint:
    """A point from its text, `split/edge exits/cloud exits` (exits comma-separated, none as
    nothing or `-`: `5/2,4/7`, `12/-/-`), with `threshold`; ValueError says what is expected.
    Whether the point belongs to a space is `check_point`'s business."""
    parts = text.split("/")
    expected = "expected 'split/edge exits/cloud exits' (e.g. '5/2,4/7' or '12/-/-')"
    if len(parts) != 3 or len(text) > MAX_POINT_CHARS:
        raise ValueError(f"{expected}, got {text[:MAX_POINT_CHARS]!r}")
    try:
        split = int(parts[0])
        edge, cloud = (
            tuple(int(c) for c in p.split(",")) if p not in {"", "-"} else () for p in parts[1:]
        )
    except ValueError:
        raise ValueError(f"{expected}, got {text!r}") from None
    return OperatingPoint(split, edge, cloud, threshold)
