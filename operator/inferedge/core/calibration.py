"""Calibration: what every exit said about every validation sample, and the threshold sweep.

`Observations` is what a backend records by running the backbone and its exit heads over a
labelled split; everything after that (the sweep, baselines, the oracle, threshold choice) is
pure arithmetic over it and the plan.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from inferedge.core.roles import Role

ConfidenceKind = Literal["max_softmax", "entropy"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExitObservations(_Frozen):
    """One exit (or the final classifier) over N samples."""

    part: Role
    cut_index: int = Field(ge=1)
    max_softmax: tuple[float, ...] = Field(description="Largest softmax probability per sample.")
    entropy: tuple[float, ...] = Field(
        description="Normalised prediction entropy in [0, 1] per sample (0 = certain)."
    )
    correct: tuple[bool, ...] = Field(description="Whether the exit's prediction is right.")

    @model_validator(mode="after")
    def _same_length(self) -> ExitObservations:
        n = len(self.correct)
        if len(self.max_softmax) != n or len(self.entropy) != n:
            raise ValueError("max_softmax, entropy and correct must have one entry per sample")
        return self

    def confidence(self, kind: ConfidenceKind) -> tuple[float, ...]:
        """Confidence per sample on a 0..1 scale where higher means surer."""
        if kind == "max_softmax":
            return self.max_softmax
        return tuple(1.0 - e for e in self.entropy)


class Observations(_Frozen):
    """Every exit in path order (edge exits, cloud exits), then the final classifier."""

    split: str = Field(description="Which data split was observed, e.g. 'val' or 'test'.")
    exits: tuple[ExitObservations, ...]
    final: ExitObservations

    @model_validator(mode="after")
    def _consistent(self) -> Observations:
        n = len(self.final.correct)
        if any(len(e.correct) != n for e in self.exits):
            raise ValueError("every exit must observe the same samples as the final classifier")
        cuts = [e.cut_index for e in self.exits]
        if cuts != sorted(cuts) or len(set(cuts)) != len(cuts):
            raise ValueError("exits must be in path order with distinct cut indices")
        return self

    @property
    def num_samples(self) -> int:
        """N, the number of observed samples."""
        return len(self.final.correct)
