"""The pure runtime policies: exit test, degraded fallback, batch flushing, setting checks."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferedge.runtime.policy import (
    BatchPolicy,
    Candidate,
    PolicyError,
    degraded_choice,
    should_exit,
    validate_threshold,
)

unit = st.floats(min_value=0.0, max_value=1.0)
candidates = st.lists(
    st.builds(Candidate, st.integers(0, 6), unit, st.integers(0, 9)), min_size=1, max_size=7
)


@given(unit, unit)
def test_should_exit_is_confidence_at_least_threshold(confidence: float, threshold: float) -> None:
    assert should_exit(confidence, threshold) == (confidence >= threshold)


@given(unit)
def test_threshold_edges(confidence: float) -> None:
    assert should_exit(confidence, 0.0)  # 0 answers at the first exit, always
    assert not should_exit(confidence, math.nextafter(1.0, 2.0))  # above 1 never answers
    assert should_exit(confidence, confidence)  # a tie answers


@pytest.mark.parametrize("value", [0, 0.0, 0.5, 1, 1.0, 1.5, 7])
def test_valid_thresholds(value: float) -> None:
    assert validate_threshold(value) == float(value)
    assert isinstance(validate_threshold(value), float)


@pytest.mark.parametrize(
    "value", [-0.01, -1, math.nan, math.inf, -math.inf, True, None, "0.5", [0.5]]
)
def test_invalid_thresholds_are_refused_in_one_line(value: object) -> None:
    with pytest.raises(PolicyError, match="threshold must be") as info:
        validate_threshold(value)
    assert "\n" not in str(info.value)


@given(candidates)
def test_degraded_choice_is_the_most_confident_exit(cands: list[Candidate]) -> None:
    chosen = degraded_choice(cands)
    assert chosen in cands
    best = max(c.confidence for c in cands)
    assert chosen is not None
    assert chosen.confidence == best
    # among equally confident exits the deepest wins
    assert chosen.exit_index == max(c.exit_index for c in cands if c.confidence == best)


def test_degraded_choice_without_candidates_is_none() -> None:
    assert degraded_choice([]) is None


def test_degraded_choice_prefers_the_deeper_exit_on_a_tie() -> None:
    first, second = Candidate(0, 0.4, 1), Candidate(1, 0.4, 2)
    assert degraded_choice([first, second]) == second
    assert degraded_choice([second, first]) == second


@given(
    st.integers(1, 64),
    st.floats(0.0, 100.0),
    st.integers(-2, 200),
    st.floats(0.0, 200.0),
)
def test_flush_now(size: int, wait: float, queued: int, oldest: float) -> None:
    policy = BatchPolicy(size, wait)
    expected = queued > 0 and (queued >= size or oldest >= wait)
    assert policy.flush_now(queued, oldest) == expected


def test_flush_now_boundaries() -> None:
    policy = BatchPolicy(max_batch_size=4, max_wait_ms=10.0)
    assert not policy.flush_now(0, 1e9)  # nothing to run however long we waited
    assert not policy.flush_now(3, 9.99)
    assert policy.flush_now(4, 0.0)  # full
    assert policy.flush_now(1, 10.0)  # the oldest is due
    assert BatchPolicy(8, 0.0).flush_now(1, 0.0)  # no wait: run whatever is there


@given(st.floats(0.0, 100.0), st.floats(0.0, 300.0))
def test_wait_budget(wait: float, oldest: float) -> None:
    budget = BatchPolicy(8, wait).wait_budget_ms(oldest)
    assert budget == max(wait - oldest, 0.0)
    assert budget >= 0.0


@given(st.integers(1, 32), st.lists(st.integers(1, 40), max_size=20))
def test_take_fills_a_batch_in_order_without_splitting(size: int, sizes: list[int]) -> None:
    policy = BatchPolicy(size, 1.0)
    count = policy.take(sizes)
    if not sizes:
        assert count == 0
        return
    assert count >= 1  # progress, even for a request larger than a batch
    taken = sum(sizes[:count])
    assert taken <= size or count == 1
    if count < len(sizes):
        assert taken + sizes[count] > size  # the next request would not have fitted


def test_take_examples() -> None:
    policy = BatchPolicy(max_batch_size=4, max_wait_ms=1.0)
    assert policy.take([1, 1, 1, 1, 1]) == 4
    assert policy.take([3, 3, 3]) == 1
    assert policy.take([9, 1]) == 1  # too big for a batch: runs alone
    assert policy.take([2, 2, 1]) == 2


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be an integer >= 1"),
        ({"max_batch_size": 2.5}, "max_batch_size must be an integer >= 1"),
        ({"max_batch_size": True}, "max_batch_size must be an integer >= 1"),
        ({"max_wait_ms": -1.0}, "max_wait_ms must be a finite number >= 0"),
        ({"max_wait_ms": math.inf}, "max_wait_ms must be a finite number >= 0"),
        ({"max_wait_ms": math.nan}, "max_wait_ms must be a finite number >= 0"),
    ],
)
def test_batch_policy_is_validated(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(PolicyError, match=fragment):
        BatchPolicy(**kwargs)  # type: ignore[arg-type]


# -- admission, deadlines, splitting -------------------------------------------------------


def test_admission_keeps_accepted_samples_within_the_bound() -> None:
    from inferedge.runtime.policy import admit

    assert admit(0, 1000, 8)  # an idle cloud takes anything: it will be split
    assert admit(4, 4, 8)
    assert not admit(5, 4, 8)
    assert not admit(8, 1, 8)


def test_a_deadline_is_the_arrival_plus_the_budget_on_the_receivers_clock() -> None:
    from inferedge.runtime.policy import deadline_from_budget, expired

    assert deadline_from_budget(100.0, 250.0) == 100.25
    assert deadline_from_budget(100.0, None) is None
    assert not expired(None, 1e9)
    assert expired(100.25, 100.25)
    assert not expired(100.25, 100.2)


@pytest.mark.parametrize(
    ("rows", "size", "pieces"),
    [
        (0, 8, []),
        (5, 8, [(0, 5)]),
        (8, 8, [(0, 8)]),
        (20, 8, [(0, 8), (8, 16), (16, 20)]),
        (1024, 256, [(0, 256), (256, 512), (512, 768), (768, 1024)]),
    ],
)
def test_large_offloads_are_split_to_the_batch_size(
    rows: int, size: int, pieces: list[tuple[int, int]]
) -> None:
    from inferedge.runtime.policy import split_rows

    assert split_rows(rows, size) == pieces


def test_the_admission_bound_must_be_positive() -> None:
    with pytest.raises(PolicyError, match="max_queued_samples must be an integer >= 1"):
        BatchPolicy(max_queued_samples=0)
