"""The serverless cost model (Google Cloud Functions 1st gen by default)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from inferedge.core.cost import CostModel, Tier

MIB = 1024 * 1024


def test_gcf_gen1_price_of_one_request() -> None:
    # 150 ms bills as 200 ms; 200 MiB fits the 256 MiB / 0.4 GHz tier.
    cost = CostModel().usd_per_request(150.0, 200 * MIB)
    expected = 0.40e-6 + 0.2 * (0.25 * 0.0000025 + 0.4 * 0.0000100)
    assert cost == pytest.approx(expected)
    assert CostModel().usd_per_million(150.0, 200 * MIB) == pytest.approx(expected * 1e6)


def test_compute_time_is_rounded_up_to_the_step() -> None:
    model = CostModel()
    assert model.usd_per_request(1.0, MIB) == model.usd_per_request(100.0, MIB)
    assert model.usd_per_request(100.1, MIB) > model.usd_per_request(100.0, MIB)


def test_memory_picks_the_smallest_tier_that_fits() -> None:
    model = CostModel()
    assert model.tier_for(128 * MIB).memory_mib == 128
    assert model.tier_for(128 * MIB + 1).memory_mib == 256
    assert model.tier_for(100_000 * MIB).memory_mib == 8192


def test_every_figure_is_configurable() -> None:
    model = CostModel(
        usd_per_million_invocations=0.0,
        usd_per_gb_second=1.0,
        usd_per_ghz_second=0.0,
        rounding_ms=1.0,
        tiers=(Tier(memory_mib=1024, cpu_ghz=1.0),),
    )
    assert model.usd_per_request(1000.0, MIB) == pytest.approx(1.0)


def test_tiers_must_increase() -> None:
    with pytest.raises(ValidationError, match="strictly increasing"):
        CostModel(tiers=(Tier(memory_mib=256, cpu_ghz=1), Tier(memory_mib=128, cpu_ghz=1)))
