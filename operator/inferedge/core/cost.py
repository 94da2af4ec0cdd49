"""Cloud cost model: pay-per-invocation serverless pricing.

The default is Google Cloud Functions (1st gen): $0.40 per million invocations, $0.0000025 per
GB-second, $0.0000100 per GHz-second, compute time rounded up to 100 ms, and fixed memory/CPU
tiers. Every figure can be configured, so other providers fit the same shape.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIB = 1024 * 1024


class Tier(BaseModel):
    """One memory size and the CPU clock that comes with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memory_mib: int = Field(gt=0, description="Memory of the function instance in MiB.")
    cpu_ghz: float = Field(gt=0.0, description="CPU clock allotted to that memory size, GHz.")


GCF_GEN1_TIERS: tuple[Tier, ...] = (
    Tier(memory_mib=128, cpu_ghz=0.2),
    Tier(memory_mib=256, cpu_ghz=0.4),
    Tier(memory_mib=512, cpu_ghz=0.8),
    Tier(memory_mib=1024, cpu_ghz=1.4),
    Tier(memory_mib=2048, cpu_ghz=2.4),
    Tier(memory_mib=4096, cpu_ghz=4.8),
    Tier(memory_mib=8192, cpu_ghz=4.8),
)


class CostModel(BaseModel):
    """Serverless pricing; the defaults are Google Cloud Functions 1st gen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="gcf-gen1", description="Label shown in reports.")
    usd_per_million_invocations: float = Field(default=0.40, ge=0.0)
    usd_per_gb_second: float = Field(default=0.0000025, ge=0.0)
    usd_per_ghz_second: float = Field(default=0.0000100, ge=0.0)
    rounding_ms: float = Field(
        default=100.0, gt=0.0, description="Billed compute time is rounded up to this step."
    )
    tiers: tuple[Tier, ...] = Field(default=GCF_GEN1_TIERS, min_length=1)

    @model_validator(mode="after")
    def _tiers_sorted(self) -> CostModel:
        sizes = [t.memory_mib for t in self.tiers]
        if sizes != sorted(sizes) or len(set(sizes)) != len(sizes):
            raise ValueError("tiers must have strictly increasing memory_mib")
        return self

    def tier_for(self, memory_bytes: int) -> Tier:
        """The smallest tier that holds `memory_bytes` (the largest one if none does)."""
        for tier in self.tiers:
            if tier.memory_mib * MIB >= memory_bytes:
                return tier
        return self.tiers[-1]

    def usd_per_request(self, compute_ms: float, memory_bytes: int) -> float:
        """Cost of one invocation that computes for `compute_ms` and needs `memory_bytes`."""
        tier = self.tier_for(memory_bytes)
        billed_s = math.ceil(max(compute_ms, 0.0) / self.rounding_ms) * self.rounding_ms / 1e3
        gb = tier.memory_mib / 1024.0
        per_second = gb * self.usd_per_gb_second + tier.cpu_ghz * self.usd_per_ghz_second
        return self.usd_per_million_invocations / 1e6 + billed_s * per_second

    def usd_per_million(self, compute_ms: float, memory_bytes: int) -> float:
        """Cost of a million such invocations, the unit reports use."""
        return self.usd_per_request(compute_ms, memory_bytes) * 1e6
