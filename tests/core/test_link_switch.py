"""The hysteresis over the map's cells: no move on one estimate, none sooner than the dwell."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferedge.core.link_switch import Cell, SwitchPolicy, SwitchState, observe

POLICY = SwitchPolicy(confirmations=3, min_dwell_s=2.0)


def run(cells: list[Cell], step_s: float, policy: SwitchPolicy = POLICY) -> list[SwitchState]:
    state = SwitchState(serving=(0, 0), since_s=0.0)
    out = []
    for i, cell in enumerate(cells, start=1):
        state = observe(state, cell, i * step_s, policy)
        out.append(state)
    return out


def test_a_lasting_change_is_followed_after_the_confirmations() -> None:
    states = run([(2, 0)] * 5, step_s=1.0)
    assert [s.serving for s in states] == [(0, 0), (0, 0), (2, 0), (2, 0), (2, 0)]
    assert states[-1].switches == 1
    assert states[2].since_s == 3.0


def test_one_stray_estimate_and_a_flapping_border_do_not_move_it() -> None:
    states = run([(1, 0), (0, 0), (1, 0), (0, 0), (1, 0), (2, 0), (1, 0)], step_s=1.0)
    assert all(s.serving == (0, 0) for s in states)
    assert states[-1].switches == 0


def test_the_dwell_holds_a_move_until_it_has_passed() -> None:
    states = run([(1, 0)] * 30, step_s=0.1)
    first = next(i for i, s in enumerate(states) if s.serving == (1, 0))
    assert states[first].since_s == pytest.approx(2.0)  # the third confirmation came at 0.3 s


cells = st.tuples(st.integers(0, 2), st.integers(0, 1))


@given(st.lists(cells, max_size=200), st.floats(0.01, 3.0))
def test_moves_come_only_after_confirmations_and_never_within_the_dwell(
    seen: list[Cell], step_s: float
) -> None:
    states = run(seen, step_s)
    previous = SwitchState(serving=(0, 0), since_s=0.0)
    for i, state in enumerate(states):
        if state.serving != previous.serving:
            assert state.switches == previous.switches + 1
            assert state.since_s - previous.since_s >= POLICY.min_dwell_s
            assert seen[max(0, i - 2) : i + 1] == [state.serving] * min(3, i + 1)
        previous = state


def test_a_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="confirmations: expected at least 1, got 0"):
        SwitchPolicy(confirmations=0)
    with pytest.raises(ValueError, match="min_dwell_s: expected >= 0"):
        SwitchPolicy(min_dwell_s=float("nan"))
