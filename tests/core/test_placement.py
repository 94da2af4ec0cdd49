"""Exit placement: linear and truncated-Pareto targets, and the snapping rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferedge.core.placement import (
    PARETO_80_20_ALPHA,
    linear_targets,
    pareto_quantile,
    pareto_targets,
    place_exits,
    snap,
)


def test_linear_targets_are_evenly_spaced() -> None:
    assert linear_targets(3, 4) == [0.25, 0.5, 0.75]
    assert linear_targets(2, 2) == [0.5, 1.0]


def test_pareto_quantile_spans_the_truncated_support() -> None:
    assert pareto_quantile(0.0, 0.1, 1.0, 1.16) == pytest.approx(0.1)
    assert pareto_quantile(1.0, 0.1, 1.0, 1.16) == pytest.approx(1.0)


def test_80_20_alpha_gives_the_top_fifth_four_fifths_of_the_total() -> None:
    # Pareto's Lorenz curve: the top share p holds p ** (1 - 1/alpha) of the total.
    assert pytest.approx(0.8, abs=1e-3) == 0.2 ** (1 - 1 / PARETO_80_20_ALPHA)


def test_pareto_crowds_exits_earlier_than_linear() -> None:
    pareto = pareto_targets(3, 4, 0.05, PARETO_80_20_ALPHA)
    assert pareto == sorted(pareto)
    assert all(p < lin for p, lin in zip(pareto, linear_targets(3, 4), strict=True))


@pytest.mark.parametrize(
    ("q", "x_min", "x_max"), [(-0.1, 0.1, 1.0), (1.1, 0.1, 1.0), (0.5, 0.0, 1.0), (0.5, 2, 1)]
)
def test_pareto_quantile_rejects_bad_arguments(q: float, x_min: float, x_max: float) -> None:
    with pytest.raises(ValueError, match=r"quantile|x_min"):
        pareto_quantile(q, x_min, x_max, 1.16)


def test_snap_prefers_the_deeper_candidate_on_ties() -> None:
    # conv, norm and activation share one cumulative FLOP count: the exit goes after the activation
    assert snap([0.5], [0.1, 0.5, 0.5, 0.5, 0.9]) == [3]


def test_snap_keeps_room_for_later_targets() -> None:
    assert snap([0.9, 0.95, 1.0], [0.1, 0.2, 0.3]) == [0, 1, 2]


def test_place_exits_returns_fewer_when_few_cuts_are_admissible() -> None:
    assert place_exits(3, [0.5, 1.0], end_is_exit=True, placement="linear") == [0, 1]
    assert place_exits(0, [0.5, 1.0], end_is_exit=True, placement="linear") == []
    assert place_exits(2, [], end_is_exit=True, placement="pareto") == []


@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60).map(sorted),
    st.integers(1, 3),
    st.sampled_from(["linear", "pareto"]),
    st.booleans(),
)
def test_placed_exits_are_distinct_ordered_and_bounded(
    positions: list[float], n: int, placement: str, end_is_exit: bool
) -> None:
    picked = place_exits(n, positions, end_is_exit=end_is_exit, placement=placement)  # type: ignore[arg-type]
    assert len(picked) == min(n, len(positions))
    assert picked == sorted(set(picked))
    assert all(0 <= i < len(positions) for i in picked)
