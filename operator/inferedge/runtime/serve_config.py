"""What one partition server is told: the CLI builds it from flags and environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from inferedge.api.adaptation import AdaptMode
from inferedge.api.tuning import KnobEmulationSpec, TuningSpec
from inferedge.core.link import Link
from inferedge.core.link_switch import SwitchPolicy
from inferedge.core.link_trace import LinkTrace
from inferedge.core.manifest import parse_set_prefix
from inferedge.core.operating_space import OperatingPoint
from inferedge.core.roles import Role
from inferedge.dnn.slowdown import Hold
from inferedge.runtime.clock_agent import DEFAULT_SOCKET
from inferedge.runtime.policy import BatchPolicy
from inferedge.transport.codec import Encoding


@dataclass(frozen=True)
class ServeConfig:
    """Everything one partition server needs; the CLI builds it from flags and environment."""

    role: Role
    store_uri: str
    prefix: str
    manifest_sha256: str
    """The pin of `prefix`: its manifest's sha256, given by the trusted side."""
    cache_dir: Path
    nats_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    threshold: float | None = None  # None: the calibrated c_thr from the manifest
    offload_timeout_s: float = 2.0
    batch_policy: BatchPolicy = field(default_factory=BatchPolicy)
    max_in_flight: int = 128
    """Cloud only: offloads taken in at once (waiting for their batch); more get BusyError."""
    encoding: Encoding = "raw"
    compute_slowdown: float = 1.0
    emulated_hold: Hold = "spin"
    """How an emulated slowdown holds the compute thread (`inferedge.dnn.slowdown`)."""
    emulated_link: Link | LinkTrace | None = None
    """Edge only: offloads pay this link's (or the trace's link of the moment's) bandwidth and
    RTT."""
    emulated_link_origin: float | None = None
    """When a trace's t_s=0 is (Unix seconds); None: the first offload."""
    declared_link: Link | None = None
    """Edge only: the link the plan was made for, where its link estimate starts."""
    offloads_in_flight: int = 2
    """Edge only: offload messages on the wire at once; more offloads wait and leave together."""
    edge_batch_size: int = 1
    """Edge only: samples of queued requests run together at most (1: one request at a time)."""
    edge_max_wait_ms: float = 0.0
    """Edge only: how long a batch short of `edge_batch_size` may wait for more (0: never)."""
    tuning: TuningSpec | None = None
    """Edge only: tune the batch size and clocks online (`runtime.knob_tuner`)."""
    clock_agent_socket: Path = DEFAULT_SOCKET
    emulated_knobs: KnobEmulationSpec | None = None
    """Edge only: tune an emulated device's clocks and power instead of the node's."""
    pinned_sets: Mapping[str, str] = field(default_factory=dict)
    """Other sets a reload may switch to, each prefix with its manifest's sha256."""
    adapt: AdaptMode = "follow"
    """Edge of an operating space: follow the estimated link, keep the declared link's point
    (off), or follow an emulated trace's true link (oracle)."""
    pin_point: OperatingPoint | None = None
    """Edge, with `adapt` off: serve this route (split and exits) only; of a plain set, only a
    baseline's (`core.space.check_baseline`)."""
    whole_chain: bool = False
    """Load every step of the set, not only this side's: a cloud that answers raw inputs
    (a cloud-only baseline), an edge pinned to the whole model."""
    switch_policy: SwitchPolicy = field(default_factory=SwitchPolicy)
    """Edge of an operating space: the hysteresis of its moves."""
    probe_interval_s: float = 0.2
    """Edge of an operating space: probe the link after this long without a measurement."""
    answer_at_exit: int | None = None
    """Edge: serve the model truncated at its k-th edge exit, a lighter version of it."""
    pool: str | None = None
    """Edge of a site: the pool this replica belongs to; it then also takes the dispatcher's
    requests over NATS and sends it heartbeats (`runtime.pool_member`)."""
    replica: str | None = None
    """Edge of a site: this replica's name within its pool (a pod's name)."""
    stage: tuple[int, int] | None = None
    """Edge of a site served as a pipeline over its pools: the cuts this replica's stage runs
    from and to; it then takes activations, not requests (`runtime.stage_member`)."""

    def pins(self) -> dict[str, str]:
        """Every set this server may serve, by normalised prefix, with its manifest sha256."""
        pins = {str(parse_set_prefix(p)): sha for p, sha in self.pinned_sets.items()}
        return {**pins, str(parse_set_prefix(self.prefix)): self.manifest_sha256}
