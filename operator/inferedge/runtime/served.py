"""What both dataplanes share: the partition being served, its part, and the live c_thr."""

from __future__ import annotations

from inferedge.core.roles import Role
from inferedge.runtime.metrics import Metrics
from inferedge.runtime.partition import Partition, PartitionError, check_slowdown
from inferedge.runtime.policy import validate_threshold


def checked(partition: Partition | None, part: Role) -> Partition | None:
    """`partition`, refused (PartitionError) when it is not a servable `part`."""
    if partition is not None and partition.part != part:
        raise PartitionError(f"the {part} dataplane cannot serve the {partition.part} part")
    if partition is not None and part == "cloud" and not partition.answers_everything:
        raise PartitionError(f"plan {partition.plan_hash} has an empty cloud part")
    return partition


class Served:
    """What both dataplanes share: the partition being served and the live c_thr."""

    _part: Role

    def __init__(
        self,
        partition: Partition | None,
        threshold: float,
        metrics: Metrics | None,
        compute_slowdown: float = 1.0,
    ):
        self._partition = checked(partition, self._part)
        self._threshold = validate_threshold(threshold)
        self.metrics = metrics if metrics is not None else Metrics()
        self.compute_slowdown = check_slowdown(compute_slowdown)
        self.unmet: str | None = None
        """The objective the served operating point cannot meet (its adapter says so), which
        every answer then counts under; None while it can, and off operating spaces."""

    @property
    def partition(self) -> Partition | None:
        """The partition new requests use (None before the first load)."""
        return self._partition

    @property
    def threshold(self) -> float:
        """c_thr for new requests (the cloud's default for offloads that carry none)."""
        return self._threshold

    @property
    def ready(self) -> bool:
        """Whether requests can be served: a partition is loaded (for the edge, the cloud is
        optional)."""
        return self._partition is not None

    def set_threshold(self, threshold: float) -> None:
        """Change c_thr live; requests already running keep the value they started with."""
        self._threshold = validate_threshold(threshold)

    def swap(self, partition: Partition, threshold: float | None = None) -> None:
        """Serve `partition` (and `threshold`, when given) from the next request on; running
        requests finish on the old ones. Both change together, so no request sees one without
        the other."""
        checked(partition, self._part)
        if threshold is not None:
            self._threshold = validate_threshold(threshold)
        self._partition = partition
