"""The progress callback every long step takes, from the planner's sweeps to training."""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int, int], None]
"""Called as `progress(done, total)` each time one unit of a long step is done."""
