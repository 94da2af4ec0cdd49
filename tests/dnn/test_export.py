"""Export a plan's partitions, load them back verified, and check they compute the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from inferedge.core.manifest import (
    ManifestError,
    artifact_prefix,
    dump_manifest,
    parse_manifest,
    parse_set_prefix,
    part_steps,
)
from inferedge.core.plan import Plan, PlanRequest
from inferedge.core.planner import make_plan
from inferedge.dnn.protocols import ProfileRequest
from inferedge.dnn.torch.backend import TorchBackend
from inferedge.dnn.torch.export import (
    ArtifactLoadError,
    export_partitions,
    load_part,
    make_manifest,
)
from inferedge.dnn.torch.graph import CutGraph, build_cut_graph
from inferedge.dnn.torch.zoo import build_model

SHAPE = (3, 16, 16)


@pytest.fixture(scope="module")
def planned() -> tuple[nn.Module, CutGraph, Plan]:
    torch.manual_seed(0)
    model = build_model("resnet18", 10, 16)
    graph = build_cut_graph(model, torch.zeros(1, *SHAPE), name="resnet18")
    base = {"model_ref": "resnet18", "num_classes": 10, "input_shape": SHAPE,
            "batch_sizes": (1,), "warmup": 0, "repeats": 1}  # fmt: skip
    backend = TorchBackend()
    cloud = backend.profile(ProfileRequest(**base, device_name="cloud"))  # type: ignore[arg-type]
    edge = backend.profile(
        ProfileRequest(**base, device_name="edge", emulate_slowdown=3.0)  # type: ignore[arg-type]
    )
    request = PlanRequest(strategy="memory", memory_fraction=0.5, edge_exits=2, cloud_exits=1)
    plan = make_plan(edge, cloud, request)
    assert 0 < plan.split < plan.final_cut
    return model, graph, plan


def heads_for(graph: CutGraph, plan: Plan) -> dict[int, nn.Module]:
    torch.manual_seed(1)
    return {
        e.cut_index: nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(e.shape[0], 10)
        ).eval()
        for e in plan.exits
    }


def test_steps_cover_each_part_and_end_at_exits(planned: tuple[nn.Module, CutGraph, Plan]) -> None:
    _, _, plan = planned
    edge = part_steps(plan, "edge")
    cloud = part_steps(plan, "cloud")
    assert edge[0][0] == 0
    assert edge[-1][1] == plan.split
    assert cloud[0][0] == plan.split
    assert cloud[-1][1] == plan.final_cut
    assert cloud[-1][3]  # the last cloud step ends at the final classifier
    exit_cuts = {e.cut_index for e in plan.exits}
    assert {end for _, end, has_exit, _ in edge + cloud if has_exit} == exit_cuts


def test_exported_parts_reproduce_the_model(
    planned: tuple[nn.Module, CutGraph, Plan], tmp_path: Path
) -> None:
    model, graph, plan = planned
    heads = heads_for(graph, plan)
    files, steps = export_partitions(graph, plan, heads, tmp_path)
    manifest = parse_manifest(dump_manifest(make_manifest(plan, files, steps, None)), "m")
    assert manifest.plan.hash == plan.hash
    assert {f.name for f in files} == {s.segment for s in manifest.edge + manifest.cloud} | {
        s.head for s in manifest.edge + manifest.cloud if s.head
    }
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        expected = model(x)
        h = x
        for part in ("edge", "cloud"):
            for loaded in load_part(manifest, part, tmp_path):  # type: ignore[arg-type]
                # The partition checks every batch's shape; the program does not check again.
                assert loaded.segment.validate_inputs is False
                h = loaded.segment(h)
                if loaded.head is not None:
                    assert torch.allclose(loaded.head(h), heads[loaded.step.end](h), atol=1e-6)
    assert torch.allclose(h, expected, atol=1e-5)


def test_a_corrupted_file_is_refused(
    planned: tuple[nn.Module, CutGraph, Plan], tmp_path: Path
) -> None:
    _, graph, plan = planned
    files, steps = export_partitions(graph, plan, heads_for(graph, plan), tmp_path)
    manifest = make_manifest(plan, files, steps, None)
    target = tmp_path / manifest.cloud[0].segment
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ArtifactLoadError, match="sha256 mismatch"):
        load_part(manifest, "cloud", tmp_path)
    target.unlink()
    with pytest.raises(ArtifactLoadError, match="is missing"):
        load_part(manifest, "cloud", tmp_path)


def test_manifest_of_another_schema_version_is_refused(
    planned: tuple[nn.Module, CutGraph, Plan], tmp_path: Path
) -> None:
    _, graph, plan = planned
    files, steps = export_partitions(graph, plan, heads_for(graph, plan), tmp_path)
    text = dump_manifest(make_manifest(plan, files, steps, None)).decode()
    old = text.replace("inferedge.io/artifacts/v1", "inferedge.io/artifacts/v0")
    with pytest.raises(ManifestError, match=r"schema_version is 'inferedge\.io/artifacts/v0'"):
        parse_manifest(old.encode(), "store/manifest.json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        parse_manifest(b"{", "m")


@pytest.mark.parametrize(
    ("namespace", "pipeline", "plan_hash", "set_id", "fragment"),
    [
        ("Default", "p", "0" * 16, "1" * 16, "namespace 'Default'"),
        ("default", "../x", "0" * 16, "1" * 16, "pipeline '../x'"),
        ("default", "p", "xyz", "1" * 16, "plan hash 'xyz'"),
        ("default", "p", "0" * 16, "../../x", "artifact set id '../../x'"),
    ],
)
def test_artifact_prefix_is_checked(
    namespace: str, pipeline: str, plan_hash: str, set_id: str, fragment: str
) -> None:
    with pytest.raises(ManifestError, match=fragment.replace(".", r"\.")):
        artifact_prefix(namespace, pipeline, plan_hash, set_id)
    prefix = artifact_prefix("default", "digits", "0123456789abcdef", "fedcba9876543210")
    assert prefix == "default/digits/0123456789abcdef/fedcba9876543210"
    assert str(parse_set_prefix(prefix + "/")) == prefix
    with pytest.raises(ManifestError, match="expected <namespace>/<pipeline>/<plan-hash>/<set-id>"):
        parse_set_prefix("default/digits/0123456789abcdef")
