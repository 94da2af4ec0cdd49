"""A site of several edge pools: what its dispatcher is told, and what its replicas tell it.

`SiteConfig` is the dispatcher's file (the operator writes it into a ConfigMap, `inferedge run`
into the run directory): the site's pools, the version each one serves with that version's row
of the exploration table, and the target the shares are decided for. `Heartbeat` is the wire
message every replica of a pool sends the dispatcher (`P.beat`): who it is, what it holds and
how fast it has served. Both come from outside the dispatcher's process, so both are validated
whole before anything is used: a bad file stops the dispatcher with one line, a bad heartbeat
gets an error reply and is counted, and neither can name code.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, ValidationError, model_validator

from inferedge.api.base import DNS_LABEL, Spec
from inferedge.core.errors import InferedgeError, describe_validation_error

_LABEL = Field(pattern=DNS_LABEL, max_length=63)


class SiteError(InferedgeError):
    """A site file or a heartbeat that does not validate, named in one line."""


InputDim = Annotated[int, Field(ge=1, le=8192)]


class SitePool(Spec):
    """One edge pool of the site: the version it serves and that version's table row."""

    name: str = Field(pattern=DNS_LABEL, max_length=40, description="The pool's name.")
    version: str = Field(
        pattern=r"^[a-z0-9][-a-z0-9_.]{0,68}$", description="The version its replicas serve."
    )
    replicas: int = Field(ge=0, le=1000, description="Replicas the pool is meant to have.")
    throughput: float = Field(
        gt=0, le=1e6, description="Requests a second one replica sustains with the version."
    )
    accuracy: float = Field(ge=0, le=1, description="The version's accuracy.")
    queue_limit: int = Field(
        default=4,
        ge=1,
        le=4096,
        description="Requests one replica may hold (running or waiting) before the dispatcher "
        "passes its pool over.",
    )


class SiteStage(Spec):
    """One stage of a pipeline over the pools: a pool runs the model from one cut to another."""

    pool: str = Field(pattern=DNS_LABEL, max_length=40, description="The pool of the stage.")
    start: int = Field(ge=0, le=100_000, description="The cut its input is the activation at.")
    end: int = Field(ge=1, le=100_000, description="The cut it runs to (the final: it answers).")


class SiteConfig(Spec):
    """What a site's dispatcher serves and decides from."""

    namespace: str = _LABEL
    pipeline: str = _LABEL
    input_shape: tuple[InputDim, ...] = Field(
        min_length=1, max_length=4, description="Per-sample input shape, for the metadata."
    )
    target_rate: float = Field(gt=0, le=1e6, description="Requests a second to serve.")
    min_accuracy: float = Field(default=0.0, ge=0, le=1)
    max_utilization: float = Field(default=0.9, gt=0, le=1)
    drift_bound: float = Field(default=0.2, gt=0, lt=1)
    pools: tuple[SitePool, ...] = Field(min_length=1, max_length=8)
    request_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="How long one replica may take to answer before the request is sent to "
        "another.",
    )
    beat_timeout_s: float = Field(
        default=1.5,
        gt=0,
        le=60,
        description="A replica silent this long is gone: its requests are sent elsewhere.",
    )
    max_attempts: int = Field(
        default=4, ge=1, le=32, description="Replicas one request is sent to at most."
    )
    max_body_bytes: int = Field(default=64 << 20, ge=1024, le=1 << 30)
    fixed_shares: dict[str, Annotated[float, Field(ge=0, le=1)]] | None = Field(
        default=None,
        description="Follow these shares instead of deciding them (a benchmark's comparison "
        "policies); a pool without live replicas is still passed over.",
    )
    stages: tuple[SiteStage, ...] | None = Field(
        default=None,
        max_length=8,
        description="Serve the pools as a pipeline over boards instead of sharing the stream: "
        "every request goes through these stages in order, each pool one stage, each stage "
        "starting where the one before ended, and leaves at the first confident exit.",
    )
    stage_plan: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{8,64}$",
        description="With stages: the hash of the plan every stage serves (a replica serving "
        "another refuses the activation).",
    )

    @model_validator(mode="after")
    def _unique_pools(self) -> Self:
        names = [p.name for p in self.pools]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"pools: names must be unique, {', '.join(doubled)} repeats")
        if self.fixed_shares is not None:
            unknown = sorted(set(self.fixed_shares) - set(names))
            if unknown:
                raise ValueError(f"fixedShares: no pool named {', '.join(unknown)}")
            if not sum(self.fixed_shares.values()) > 0:
                raise ValueError("fixedShares: expected some share above 0")
        if (self.stages is None) != (self.stage_plan is None):
            raise ValueError("stages and stagePlan go together")
        if self.stages is not None:
            self._check_stages(self.stages, names)
        return self

    def _check_stages(self, stages: tuple[SiteStage, ...], names: list[str]) -> None:
        if self.fixed_shares is not None:
            raise ValueError("stages: a pipeline shares no stream, so fixedShares cannot be set")
        if sorted(s.pool for s in stages) != sorted(names):
            raise ValueError(f"stages: expected each of the pools {', '.join(names)} once")
        if stages[0].start != 0:
            raise ValueError(f"stages[0].start: expected 0 (the input), got {stages[0].start}")
        for i, stage in enumerate(stages):
            if stage.end <= stage.start:
                raise ValueError(
                    f"stages[{i}]: end {stage.end} must come after start {stage.start}"
                )
            if i and stage.start != stages[i - 1].end:
                raise ValueError(
                    f"stages[{i}].start: expected {stages[i - 1].end}, where stage {i - 1} ends"
                )


class Heartbeat(Spec):
    """One replica's heartbeat: counters since it started, so a lost beat loses nothing."""

    pool: str = Field(pattern=DNS_LABEL, max_length=40)
    replica: str = _LABEL
    plan_hash: str = Field(pattern=r"^[0-9a-f]{1,64}$")
    in_flight: int = Field(ge=0, le=1 << 20, description="Requests held now.")
    answered: int = Field(ge=0, description="Requests answered since the replica started.")
    busy_s: float = Field(
        ge=0, le=1e9, description="Seconds it held at least one request since it started."
    )
    interval_s: float = Field(gt=0, le=60, description="Seconds until its next heartbeat.")


class PoolState(Spec):
    """One pool as the dispatcher sees it now."""

    name: str
    version: str
    share: float
    assigned_rate: float
    table_throughput: float
    """Requests a second one replica sustains, as the shares were last decided from."""
    measured_throughput: float | None
    """The last measurement of one replica, requests per busy second."""
    replicas: int
    in_flight: int
    answered: int


class DecisionRecord(Spec):
    """One decision of the shares."""

    at_s: float
    """Seconds since the dispatcher started."""
    at_unix: float
    cause: str
    shares: dict[str, float]
    rate: float
    met: bool
    reason: str


class SiteStatus(Spec):
    """`GET /distribution`: the target, what is served, each pool, and every decision."""

    target_rate: float
    planned_rate: float
    accuracy: float
    met: bool
    reason: str
    cause: str
    pools: tuple[PoolState, ...]
    decisions: tuple[DecisionRecord, ...]
    retried: int
    stages: tuple[SiteStage, ...] | None = None
    """A pipeline over the pools: its stages, which every request goes through (the shares
    are then not followed)."""


def parse_site(data: bytes | str, source: str) -> SiteConfig:
    """The site file at `source`, validated; SiteError names the first bad field."""
    try:
        return SiteConfig.model_validate_json(data)
    except ValidationError as exc:
        raise SiteError(describe_validation_error(exc, source)) from None


def parse_heartbeat(data: bytes) -> Heartbeat:
    """A heartbeat off the wire, validated; SiteError names the first bad field."""
    try:
        return Heartbeat.model_validate_json(data)
    except ValidationError as exc:
        raise SiteError(describe_validation_error(exc, "heartbeat")) from None
