"""Crafted payloads in every file kind a pod or a step loads: nothing they hold ever runs.

Each payload, if run, touches a marker file. Each test plants one in a file that is otherwise
well formed (as someone who can write to the bucket would), loads it the way inferedge does,
and checks the refusal is one line and the marker was never touched. Where the format's own
loader would run the payload, a control shows it does, so the payload is live and the refusal
is what stops it.
"""

from __future__ import annotations

import contextlib
import io
import json
import pathlib
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.export import Dim

from inferedge.core.digest import sha256_file
from inferedge.core.errors import InferedgeError, ModelRefError
from inferedge.core.manifest import ArtifactFile, Manifest, Step
from inferedge.dnn.data import load_dataset
from inferedge.dnn.protocols import ArtifactLoadError
from inferedge.dnn.torch.export import load_part
from inferedge.dnn.torch.loader import load_model
from inferedge.dnn.torch.program import load_program
from inferedge.dnn.torch.weights import load_weights


class Touch:
    """Unpickling this calls `Path.touch(marker)`: the smallest visible side effect."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (pathlib.Path.touch, (self.marker,))


def _pt2(path: Path) -> Path:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    batch = Dim("batch", min=1, max=64)
    program = torch.export.export(
        model.eval(), (torch.zeros(2, 3, 8, 8),), dynamic_shapes=({0: batch},)
    )
    torch.export.save(program, path)
    return path


def _rewrite(source: Path, target: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    """A copy of the archive with each entry passed through `change` (None drops it)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = change(info.filename, old.read(info))
            if data is not None:
                new.writestr(info.filename, data)
        extra = change("", b"")
        if extra is not None:
            top = old.namelist()[0].split("/", 1)[0]
            new.writestr(f"{top}/data/constants/opaque_obj_0", extra)
    return target


def _edit_json(name: str, edit: Callable[[dict[str, Any]], None]) -> Callable[[str, bytes], Any]:
    def change(entry: str, data: bytes) -> bytes | None:
        if entry == "":
            return None
        if entry.endswith(name):
            document = json.loads(data)
            edit(document)
            return json.dumps(document).encode()
        return data

    return change


def _pickled_weight(marker: Path) -> Callable[[str, bytes], Any]:
    buffer = io.BytesIO()
    torch.save(Touch(marker), buffer)
    payload = buffer.getvalue()

    def change(entry: str, data: bytes) -> bytes | None:
        if entry == "":
            return None
        if entry.endswith("model_weights_config.json"):
            config = json.loads(data)
            first = next(iter(config["config"].values()))
            first["use_pickle"] = True
            return json.dumps(config).encode()
        if entry.endswith("data/weights/weight_0"):
            return payload
        return data

    return change


def _graph(edit: Callable[[dict[str, Any]], None]) -> Callable[[str, bytes], Any]:
    return _edit_json("models/model.json", edit)


def _first_node(program: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = program["graph_module"]["graph"]["nodes"][0]
    return node


def _opaque_object(marker: Path) -> Callable[[str, bytes], Any]:
    payload = pickle.dumps(Touch(marker))

    def change(entry: str, data: bytes) -> bytes | None:
        if entry == "":
            return payload
        if entry.endswith("model_constants_config.json"):
            return json.dumps(
                {
                    "config": {
                        "evil": {
                            "path_name": "opaque_obj_0",
                            "is_param": False,
                            "use_pickle": True,
                            "tensor_meta": None,
                        }
                    }
                }
            ).encode()
        return data

    return change


def _code(marker: Path) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


PAYLOADS: dict[str, Callable[[Path], Callable[[str, bytes], Any]]] = {
    "a pickled weight": _pickled_weight,
    "a pickled constant object": _opaque_object,
    "guard code": lambda m: _graph(lambda p: p.update(guards_code=[_code(m)])),
    "a Python callable as an operator": lambda m: _graph(
        lambda p: _first_node(p).update(target="builtins.exec")
    ),
    "a file-reading operator": lambda m: _graph(
        lambda p: _first_node(p).update(target="torch.ops.aten.from_file.default")
    ),
    "code in a symbolic size": lambda m: _graph(
        lambda p: p["graph_module"]["graph"]["tensor_values"]["input"]["sizes"][0].update(
            as_expr={"expr_str": _code(m), "hint": {"as_int": 2}}
        )
    ),
    "code in a node name": lambda m: _graph(lambda p: _first_node(p).update(name=f"x; {_code(m)}")),
    "a foreign container in the input structure": lambda m: _graph(
        lambda p: p["graph_module"]["signature"].update(
            in_spec=json.dumps([1, {"type": "os.system", "context": "null", "children_spec": []}])
        )
    ),
}


@pytest.fixture(scope="module")
def program_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pt2(tmp_path_factory.mktemp("pt2") / "clean.pt2")


def test_the_clean_program_loads_and_runs(program_file: Path) -> None:
    module = load_program(program_file, "clean.pt2").module()
    assert module(torch.zeros(3, 3, 8, 8)).shape == (3, 2)


@pytest.mark.parametrize("payload", PAYLOADS, ids=list(PAYLOADS))
def test_a_crafted_program_is_refused_and_runs_nothing(
    program_file: Path, tmp_path: Path, payload: str
) -> None:
    marker = tmp_path / "ran"
    crafted = _rewrite(program_file, tmp_path / "crafted.pt2", PAYLOADS[payload](marker))
    with pytest.raises(ArtifactLoadError) as err:
        load_program(crafted, "crafted.pt2")
    assert "\n" not in str(err.value)
    # The same file as a user's own model (spec.model.uri) goes through the same reader.
    with pytest.raises(ModelRefError):
        load_model(str(crafted), 2, (3, 8, 8))
    assert not marker.exists()


@pytest.mark.parametrize("payload", ["a pickled weight", "a pickled constant object"])
def test_torch_own_loader_would_run_the_payload(
    program_file: Path, tmp_path: Path, payload: str
) -> None:
    """The control: these payloads are live, so the refusal above is what stops them."""
    marker = tmp_path / "ran"
    crafted = _rewrite(program_file, tmp_path / "crafted.pt2", PAYLOADS[payload](marker))
    with contextlib.suppress(Exception):  # the program may be broken once the payload ran
        torch.export.load(crafted)
    assert marker.exists()


def test_a_served_part_with_a_payload_is_refused_even_when_its_digest_matches(
    program_file: Path, tmp_path: Path
) -> None:
    """The bucket's writer can also rewrite the manifest's digests: the runtime's loader still
    runs nothing (the pin, checked before this, is the first line of defence)."""
    marker = tmp_path / "ran"
    root = tmp_path / "set"
    (root / "edge").mkdir(parents=True)
    crafted = _rewrite(
        program_file, root / "edge" / "segment_0_1.pt2", PAYLOADS["a pickled weight"](marker)
    )
    name = "edge/segment_0_1.pt2"
    file = ArtifactFile(
        name=name,
        sha256=sha256_file(crafted),
        size=crafted.stat().st_size,
        kind="segment",
        input_shape=(3, 8, 8),
        output_shape=(2,),
    )
    step = Step(start=0, end=1, segment=name, head=None, final=True)
    # Only the files and steps matter to the loader; the plan is not read.
    manifest = Manifest.model_construct(files=(file,), edge=(step,), cloud=())
    with pytest.raises(ArtifactLoadError, match=r"artifact 'edge/segment_0_1\.pt2': ") as err:
        load_part(manifest, "edge", root)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_pickled_backbone_weights_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    weights = tmp_path / "backbone.pt"
    torch.save({"state_dict": Touch(marker)}, weights)
    with pytest.raises(InferedgeError) as err:
        load_weights(nn.Linear(2, 2), weights, model_ref="x", num_classes=2, input_shape=(2,))
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_a_dataset_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    dataset = tmp_path / "data.npz"
    np.savez(dataset, x=np.array([Touch(marker)], dtype=object), y=np.zeros(1, dtype=np.int64))
    with pytest.raises(InferedgeError) as err:
        load_dataset(str(dataset), (3, 8, 8))
    assert "\n" not in str(err.value)
    assert not marker.exists()
