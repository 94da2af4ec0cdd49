"""Keras exit heads on disk: `KerasWorkflow.save_exits` / `load_exits`, the file the CLI's
`train-exits` writes and `evaluate`, `export` and the cluster's export Job read back."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from inferedge.dnn.protocols import ExitsFileError
from inferedge.dnn.tensorflow.layout import batch_to_internal
from inferedge.dnn.tensorflow.workflow import KerasHead, KerasWorkflow
from tests.dnn.tensorflow.conftest import Planned


def head_outputs(planned: Planned, heads: list[KerasHead], x: np.ndarray) -> list[np.ndarray]:
    out = []
    for plan_exit, head in zip(planned.plan.exits, heads, strict=True):
        activation = planned.backbone.graph.head(plan_exit.cut_index)(
            batch_to_internal(x), training=False
        )
        out.append(np.asarray(head.model(activation, training=False)))
    return out


@pytest.fixture
def saved(planned: Planned, workflow: KerasWorkflow, tmp_path: Path) -> Path:
    path = tmp_path / "heads" / "exits.npz"
    workflow.save_exits(path, planned.plan, planned.exits)
    return path


def test_saved_heads_load_back_with_the_same_layers_and_outputs(
    planned: Planned, workflow: KerasWorkflow, saved: Path
) -> None:
    assert not list(saved.parent.glob(".*partial")), "written under a temporary name, renamed"
    loaded = workflow.load_exits(saved, planned.plan)
    assert [(e.cut_index, e.part) for e in loaded] == [(e.cut_index, e.part) for e in planned.exits]
    originals = [e.model for e in planned.exits]
    reloaded = [e.model for e in loaded]
    assert [h.layers for h in reloaded] == [h.layers for h in originals]
    x = np.random.default_rng(1).standard_normal((4, 3, 16, 16)).astype(np.float32)
    for before, after in zip(
        head_outputs(planned, originals, x), head_outputs(planned, reloaded, x), strict=True
    ):
        assert np.array_equal(before, after)
    # Plain arrays only: nothing in the file needs unpickling.
    with np.load(saved, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
    assert meta["plan_hash"] == planned.plan.hash


def test_heads_of_another_plan_are_refused(
    planned: Planned, workflow: KerasWorkflow, saved: Path
) -> None:
    other = planned.plan.model_copy(update={"hash": "0123456789abcdef"})
    with pytest.raises(ExitsFileError, match=rf"trained for plan {planned.plan.hash}, not 0123"):
        workflow.load_exits(saved, other)
    fewer = planned.plan.model_copy(update={"exits": planned.plan.exits[:1]})
    with pytest.raises(ExitsFileError, match=r"has an exit at cut \d+ that the plan does not"):
        workflow.load_exits(saved, fewer)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a zip file at all", r"not an inferedge Keras exits file"),
        (None, r"not an inferedge Keras exits file \(.*meta"),  # a zip without our entry
    ],
)
def test_a_file_that_is_not_an_exits_file_is_one_clear_error(
    planned: Planned, workflow: KerasWorkflow, tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "exits.npz"
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:  # what a torch.save file looks like
            archive.writestr("archive/data.pkl", b"\x80\x04N.")
    else:
        path.write_bytes(content)
    with pytest.raises(ExitsFileError, match=message) as caught:
        workflow.load_exits(path, planned.plan)
    assert "\n" not in str(caught.value)
    with pytest.raises(ExitsFileError, match=r"no such exits file"):
        workflow.load_exits(tmp_path / "missing.npz", planned.plan)


def test_weights_of_the_wrong_shape_are_refused(
    planned: Planned, workflow: KerasWorkflow, saved: Path, tmp_path: Path
) -> None:
    with np.load(saved, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["exit0_w0"] = np.zeros((3, 3), np.float32)
    broken = tmp_path / "broken.npz"
    np.savez(broken, allow_pickle=False, **arrays)
    cut = planned.plan.exits[0].cut_index
    with pytest.raises(ExitsFileError, match=rf"^{broken}: exit at cut {cut}: "):
        workflow.load_exits(broken, planned.plan)
    del arrays["exit0_w0"]
    np.savez(broken, allow_pickle=False, **arrays)
    with pytest.raises(ExitsFileError, match=r"missing weights exit0_w0"):
        workflow.load_exits(broken, planned.plan)
