"""The clock agent's pure rules: bounds, snapping, the wish book, leases and the merge."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferedge.core.clock_wishes import (
    KINDS,
    ClockKind,
    Held,
    Wish,
    allowed_steps,
    drop,
    expire,
    grant,
    hold,
    snap,
    targets,
)

TABLE = (100, 200, 300, 400, 500)
STEPS: dict[ClockKind, tuple[int, ...]] = {"cpu": (200, 300, 400), "gpu": (100, 500)}

tables = st.lists(st.integers(1, 10_000), min_size=1, max_size=12, unique=True).map(
    lambda xs: tuple(sorted(xs))
)
wishes = st.builds(Wish, st.none() | st.integers(1, 20_000), st.none() | st.integers(1, 20_000))
books = st.dictionaries(
    st.tuples(st.sampled_from(["ns/a", "ns/b", "other/c"]), st.integers(0, 3)),
    st.builds(Held, wishes, st.floats(0, 100)),
    max_size=8,
)


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ((None, None), TABLE),
        ((200, None), (200, 300, 400, 500)),
        ((None, 350), (100, 200, 300)),
        ((150, 450), (200, 300, 400)),
        ((300, 300), (300,)),
        ((310, 390), ()),
        ((600, None), ()),
        ((None, 50), ()),
    ],
)
def test_allowed_steps_keep_the_table_inside_the_bounds(
    bounds: tuple[int | None, int | None], expected: tuple[int, ...]
) -> None:
    assert allowed_steps(TABLE, *bounds) == expected


def test_allowed_steps_of_a_node_without_that_clock_are_empty() -> None:
    assert allowed_steps((), 100, 200) == ()
    assert allowed_steps(()) == ()


@pytest.mark.parametrize(
    ("khz", "expected"),
    [(1, 100), (100, 100), (199, 100), (200, 200), (450, 400), (500, 500), (10**9, 500)],
)
def test_snap_takes_the_highest_step_at_or_below_else_the_lowest(khz: int, expected: int) -> None:
    assert snap(khz, TABLE) == expected


def test_snap_without_steps_is_refused() -> None:
    with pytest.raises(ValueError, match="no allowed step"):
        snap(100, ())


@pytest.mark.parametrize(
    ("wish", "granted", "clamped"),
    [
        (Wish(), Wish(), False),
        (Wish(300, None), Wish(300, None), False),
        (Wish(350, 100), Wish(300, 100), False),  # snapped down inside the bounds
        (Wish(450, None), Wish(400, None), True),  # above the admin's max
        (Wish(150, None), Wish(200, None), True),  # below the admin's min
        (Wish(None, 499), Wish(None, 100), False),
        (Wish(None, 600), Wish(None, 500), True),
    ],
)
def test_grant_clamps_to_the_bounds_then_snaps(wish: Wish, granted: Wish, clamped: bool) -> None:
    assert grant(wish, STEPS) == (granted, clamped)


def test_grant_ignores_a_kind_the_node_does_not_have() -> None:
    assert grant(Wish(300, 500), {"cpu": (200, 300)}) == (Wish(300, None), False)
    assert grant(Wish(300, 500), {"cpu": (200, 300), "gpu": ()}) == (Wish(300, None), False)


@given(wishes, tables, tables)
def test_grant_stays_on_allowed_steps_and_never_above_a_wish_inside_them(
    wish: Wish, cpu: tuple[int, ...], gpu: tuple[int, ...]
) -> None:
    steps: dict[ClockKind, tuple[int, ...]] = {"cpu": cpu, "gpu": gpu}
    granted, clamped = grant(wish, steps)
    outside = False
    for kind in KINDS:
        asked, got = wish.of(kind), granted.of(kind)
        assert (asked is None) == (got is None)
        if asked is None or got is None:
            continue
        assert got in steps[kind]
        assert got <= max(asked, steps[kind][0])
        inside = steps[kind][0] <= asked <= steps[kind][-1]
        outside = outside or not inside
        if inside:  # the step just above the grant would exceed the wish
            following = [s for s in steps[kind] if s > got]
            assert not following or following[0] > asked
    assert clamped == outside


def test_hold_adds_and_renews_an_entry() -> None:
    book = hold({}, "ns/a", Wish(200, None), now=10.0, lease_s=5)
    assert book == {"ns/a": Held(Wish(200, None), 15.0)}
    renewed = hold(book, "ns/a", Wish(300, None), now=12.0, lease_s=5)
    assert renewed == {"ns/a": Held(Wish(300, None), 17.0)}
    assert book == {"ns/a": Held(Wish(200, None), 15.0)}, "the old book is left alone"


@pytest.mark.parametrize("lease_s", [0, -1.0])
def test_hold_refuses_a_lease_that_is_not_positive(lease_s: float) -> None:
    with pytest.raises(ValueError, match=r"^lease_s: "):
        hold({}, "ns/a", Wish(200, None), now=0.0, lease_s=lease_s)


def test_drop_forgets_only_the_given_holders() -> None:
    book = {("ns/a", 1): Held(Wish(200), 9), ("ns/a", 2): Held(Wish(300), 9),
            ("ns/b", 1): Held(Wish(400), 9)}  # fmt: skip
    assert drop(book, {("ns/a", 1), ("ns/b", 1)}) == {("ns/a", 2): Held(Wish(300), 9)}
    assert drop(book, set()) == book
    assert drop(book, {("ns/c", 1)}) == book


def test_expire_forgets_leases_that_ran_out() -> None:
    book = {"a": Held(Wish(200), 10.0), "b": Held(Wish(300), 20.0)}
    assert expire(book, 9.9) == book
    assert expire(book, 10.0) == {"b": Held(Wish(300), 20.0)}
    assert expire(book, 25.0) == {}


def test_targets_take_the_highest_wish_per_kind_and_defaults_without_one() -> None:
    assert targets({}) == {"cpu": None, "gpu": None}
    book = {"a": Held(Wish(200, None), 1), "b": Held(Wish(400, 100), 1),
            "c": Held(Wish(None, 500), 1)}  # fmt: skip
    assert targets(book) == {"cpu": 400, "gpu": 500}
    assert targets(drop(book, {"b"})) == {"cpu": 200, "gpu": 500}
    assert targets(drop(book, {"c"})) == {"cpu": 400, "gpu": 100}
    assert targets(drop(book, {"a", "b"})) == {"cpu": None, "gpu": 500}


@given(books, st.floats(0, 100))
def test_no_live_pipeline_runs_below_its_own_wish(book: dict[object, Held], now: float) -> None:
    live = expire(book, now)
    merged = targets(live)
    for kind in KINDS:
        asked = [khz for held in live.values() if (khz := held.wish.of(kind)) is not None]
        if not asked:
            assert merged[kind] is None
            continue
        assert merged[kind] in asked
        assert all(merged[kind] >= khz for khz in asked)  # type: ignore[operator]
