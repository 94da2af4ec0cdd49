"""The space step refuses an objective no operating point meets on any link of the grid."""

from __future__ import annotations

import pytest

from inferedge.core.errors import InfeasibleError
from inferedge.core.space import ObjectiveSpec
from inferedge.steps.space import check_reachable
from tests.core.test_space import inputs


def test_a_reachable_objective_passes() -> None:
    check_reachable(inputs())  # deadline 20 ms: some point meets it on a fast link


def test_an_objective_no_point_meets_on_any_link_is_refused_in_one_line() -> None:
    space = inputs().model_copy(
        update={"objective": ObjectiveSpec(kind="deadline", deadline_ms=0.01)}
    )
    with pytest.raises(InfeasibleError) as err:
        check_reachable(space)
    message = str(err.value)
    assert message.startswith(
        "spec.adaptation: no operating point meets the deadline 0.01 ms for 95% of requests "
        "on any link of the grid; the fastest, split "
    )
    assert "\n" not in message
    # no point of the made-up space is right on every sample
    floor = inputs().model_copy(
        update={"objective": ObjectiveSpec(kind="accuracy", min_accuracy=1.0)}
    )
    with pytest.raises(InfeasibleError, match=r"meets the minimum accuracy 100\.0% on any link"):
        check_reachable(floor)
