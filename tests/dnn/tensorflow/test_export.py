"""Exported Keras partitions: the manifest, verified loading, and the model they compute."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from inferedge.core.digest import sha256_file
from inferedge.core.errors import InferedgeError
from inferedge.core.manifest import Manifest, dump_manifest, parse_manifest, part_steps
from inferedge.dnn.data import Splits
from inferedge.dnn.protocols import RunnableStep
from inferedge.dnn.tensorflow.export import ArtifactLoadError
from inferedge.dnn.tensorflow.layout import batch_to_internal
from inferedge.dnn.tensorflow.workflow import KerasWorkflow
from tests.dnn.tensorflow.conftest import Planned


@pytest.fixture(scope="module")
def exported(
    planned: Planned, workflow: KerasWorkflow, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Manifest, Path]:
    out = tmp_path_factory.mktemp("export")
    manifest = workflow.export(planned.plan, planned.backbone, planned.exits, None, out)
    return manifest, out


def test_manifest_lists_every_file_with_its_digest_and_shapes(
    planned: Planned, exported: tuple[Manifest, Path]
) -> None:
    manifest, out = exported
    assert (manifest.framework, manifest.format) == ("tensorflow", "keras")
    assert {"inferedge", "tensorflow", "keras", "python"} <= manifest.versions.keys()
    assert parse_manifest(dump_manifest(manifest), "manifest.json") == manifest
    cuts = planned.backbone.graph.cut_points
    for f in manifest.files:
        path = out / f.name
        assert f.name.endswith(".keras")
        assert (f.sha256, f.size) == (sha256_file(path), path.stat().st_size)
    for part in ("edge", "cloud"):
        steps = manifest.edge if part == "edge" else manifest.cloud
        expected = part_steps(planned.plan, part)  # type: ignore[arg-type]
        assert [(s.start, s.end, s.head is not None, s.final) for s in steps] == expected
        files = {f.name: f for f in manifest.files}
        for step in steps:
            segment = files[step.segment]
            assert segment.input_shape == cuts[step.start].shape  # C x H x W, as everywhere
            assert segment.output_shape == cuts[step.end].shape
            if step.head is not None:
                assert files[step.head].input_shape == cuts[step.end].shape
                assert files[step.head].output_shape == (10,)
    assert len([f for f in manifest.files if f.kind == "head"]) == len(planned.plan.exits)


def run_part(steps: list[RunnableStep], x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    heads = []
    for step in steps:
        x = step.segment(x)
        if step.head is not None:
            heads.append(step.head(x))
    return x, heads


def test_loaded_parts_compute_the_backbone_and_its_exits(
    planned: Planned, workflow: KerasWorkflow, exported: tuple[Manifest, Path], splits: Splits
) -> None:
    manifest, out = exported
    x = splits.test.x[:16]  # N x C x H x W, as dnn.data gives it
    edge = workflow.load_part(manifest, "edge", out)
    cloud = workflow.load_part(manifest, "cloud", out)
    activation, edge_logits = run_part(edge, x)
    assert activation.shape == (16, *planned.backbone.graph.cut_points[planned.plan.split].shape)
    logits, cloud_logits = run_part(cloud, activation)

    graph = planned.backbone.graph
    expected = np.asarray(graph.model(batch_to_internal(x), training=False))
    assert logits.dtype == np.float32
    assert np.abs(logits - expected).max() <= 1e-4
    taps = [
        np.asarray(e.model.model(graph.head(e.cut_index)(batch_to_internal(x), training=False)))
        for e in planned.exits
    ]
    for got, want in zip(edge_logits + cloud_logits, taps, strict=True):
        assert np.abs(got - want).max() <= 1e-4


def test_a_tampered_or_missing_file_is_refused(
    exported: tuple[Manifest, Path], workflow: KerasWorkflow, tmp_path: Path
) -> None:
    manifest, out = exported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    target = copy / manifest.edge[0].segment
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ArtifactLoadError, match=r"sha256 mismatch .*refusing to load it"):
        workflow.load_part(manifest, "edge", copy)
    target.unlink()
    with pytest.raises(ArtifactLoadError, match=r"is missing under"):
        workflow.load_part(manifest, "edge", copy)


def test_a_file_with_the_right_digest_but_not_a_model_is_a_clear_error(
    exported: tuple[Manifest, Path], workflow: KerasWorkflow, tmp_path: Path
) -> None:
    manifest, _ = exported
    name = manifest.edge[0].segment
    (tmp_path / name).parent.mkdir(parents=True)
    (tmp_path / name).write_bytes(b"junk")
    files = tuple(
        f.model_copy(update={"sha256": sha256_file(tmp_path / name)}) if f.name == name else f
        for f in manifest.files
    )
    forged = manifest.model_copy(update={"files": files})
    with pytest.raises(ArtifactLoadError, match=rf"artifact '{name}': ") as info:
        workflow.load_part(forged, "edge", tmp_path)
    assert "\n" not in str(info.value)


def test_loaded_steps_take_only_the_shapes_the_manifest_records(
    exported: tuple[Manifest, Path], workflow: KerasWorkflow
) -> None:
    manifest, out = exported
    step = workflow.load_part(manifest, "edge", out)[0]
    with pytest.raises(
        InferedgeError, match=r"expected a batch of shape N x 3x16x16, got 2x16x16x3"
    ):
        step.segment(np.zeros((2, 16, 16, 3), np.float32))
    # Other float types are accepted and computed in float32.
    out64 = step.segment(np.zeros((2, 3, 16, 16), np.float64))
    assert out64.dtype == np.float32


def test_a_torch_manifest_is_not_loaded_by_the_keras_workflow(
    exported: tuple[Manifest, Path], workflow: KerasWorkflow
) -> None:
    manifest, out = exported
    torch_manifest = manifest.model_copy(update={"framework": "torch"})
    with pytest.raises(ArtifactLoadError, match=r"files are for torch, not tensorflow"):
        workflow.load_part(torch_manifest, "cloud", out)
