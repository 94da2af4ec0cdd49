"""One model cut into stages (a pipeline over boards): each stage runs its cuts and tests its
exits, the stages chained give the whole model's answers, and the stage messages are checked
whole on receipt."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from inferedge.runtime.partition import Partition, PartitionError, RowResult
from inferedge.runtime.stage_wire import (
    StageAnswers,
    read_stage_reply,
    read_stage_request,
    stage_reply,
    stage_request,
)
from inferedge.transport.errors import WireError
from tests.runtime.conftest import SHAPE, Exported

Images = Callable[..., np.ndarray]


@pytest.fixture(scope="module")
def whole(exported: Exported) -> Partition:
    return exported.load("whole", "edge")


def _cuts(part: Partition) -> list[int]:
    return [s.step.start for s in part.steps] + [part.steps[-1].step.end]


def test_the_stages_chained_answer_as_the_whole_model(
    whole: Partition, exported: Exported, images: Images
) -> None:
    cuts = _cuts(whole)
    assert len(cuts) == 4  # two exits, then the final classifier
    x = images(5)
    activation, answered = x, []
    for start, end in ((cuts[0], cuts[1]), (cuts[1], cuts[3])):
        assert whole.stage_shape(start) == activation.shape[1:]
        out = whole.run_stage(activation, 1.5, start, end)
        assert out.answers[: len(out.pending)] == (None,) * len(out.pending)
        activation = out.activation
        answered = [a for a in out.answers if a is not None]
    assert len(answered) == 5
    assert [a.prediction for a in answered] == exported.predict(x)
    assert {a.exit_index for a in answered} == {whole.final_exit_index}


def test_a_stage_answers_at_its_own_exits_and_passes_on_the_rest(
    whole: Partition, images: Images
) -> None:
    cuts = _cuts(whole)
    x = images(4)
    everything = whole.run_stage(x, 0.0, cuts[0], cuts[2])
    assert all(a is not None and a.cut_index == cuts[1] for a in everything.answers)
    assert everything.activation.shape[0] == 0
    none = whole.run_stage(x, 1.5, cuts[0], cuts[2])
    assert none.answers == (None,) * 4
    assert none.pending == (0, 1, 2, 3)
    assert none.activation.shape[1:] == whole.stage_shape(cuts[2])
    # Per row: the edge part run whole on the same rows leaves the same rows at the same exit.
    edge = whole.run_edge(x, 0.0)
    assert [a.prediction for a in everything.answers if a] == [
        a.prediction for a in edge.answers if a
    ]


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [(1, 3, "a stage starts and ends"), (0, 0, "a stage starts and ends")],
)
def test_a_stage_off_the_steps_is_refused(
    whole: Partition, images: Images, start: int, end: int, fragment: str
) -> None:
    cuts = _cuts(whole)
    if start == 1:
        start = cuts[1] + 1 if cuts[1] + 1 not in cuts else cuts[1] + 2
        end = cuts[3]
    with pytest.raises(PartitionError, match=fragment):
        whole.run_stage(images(1), 0.5, start, end)


def test_a_stage_refuses_an_activation_of_the_wrong_shape(whole: Partition) -> None:
    cuts = _cuts(whole)
    with pytest.raises(PartitionError, match=r"stage input shape must be \[N, "):
        whole.run_stage(np.zeros((1, *SHAPE), np.float32), 0.5, cuts[1], cuts[3])


def test_stage_messages_round_trip() -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    headers, payload = stage_request(x, plan_hash="ab" * 8, start=3, request_id="r1")
    sent = read_stage_request(headers, payload)
    assert sent.start == 3
    assert sent.plan_hash == "ab" * 8
    np.testing.assert_array_equal(sent.activation, x)
    answers = StageAnswers(plan_hash="ab" * 8, rows=(RowResult(4, 0.9, 0, 5), None), compute_ms=1.5)
    reply_headers, body = stage_reply(answers, x[1:], request_id="r1")
    got, pending = read_stage_reply(reply_headers, body, rows=2)
    assert got == answers
    np.testing.assert_array_equal(pending, x[1:])


def test_stage_messages_that_do_not_fit_are_refused() -> None:
    x = np.zeros((2, 3), np.float32)
    answers = StageAnswers(plan_hash="ab" * 8, rows=(None, None), compute_ms=0.0)
    headers, body = stage_reply(answers, x[:1], request_id="r1")
    with pytest.raises(WireError, match="with 1 activations for the 2 going on"):
        read_stage_reply(headers, body, rows=2)
    headers, body = stage_reply(answers, x, request_id="r1")
    with pytest.raises(WireError, match="answered 2 rows of 3 sent"):
        read_stage_reply(headers, body, rows=3)
    with pytest.raises(WireError, match="answers-length"):
        read_stage_reply({**headers, "Inferedge-Extra-answers-length": "99999"}, body, rows=2)
    with pytest.raises(WireError, match="stage answers"):
        read_stage_reply(headers, b"[" + body[1:], rows=2)
    request, payload = stage_request(x, plan_hash="ab" * 8, start=0, request_id="r1")
    with pytest.raises(WireError, match="stage-start"):
        read_stage_request({**request, "Inferedge-Extra-stage-start": "x"}, payload)
    ints, payload = stage_request(np.zeros((2, 3), np.int64), plan_hash="ab" * 8, start=0,
                                  request_id="r1")  # fmt: skip
    with pytest.raises(WireError, match="float32 rows"):
        read_stage_request(ints, payload)
