"""Every zoo model splits exactly at every cut point; ResNet is cut only between blocks."""

from __future__ import annotations

import pytest
import torch
from torch import fx

from inferedge.dnn.torch.graph import CutGraph, build_cut_graph
from inferedge.dnn.torch.zoo import ZOO_NAMES, build_model

SIDE = 32


def cut_zoo(name: str) -> tuple[torch.nn.Module, CutGraph, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, input_size=SIDE)
    x = torch.randn(1, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
    return model, build_cut_graph(model, x, name=name), x


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_head_then_tail_reproduces_the_model_at_every_cut(name: str) -> None:
    model, graph, x = cut_zoo(name)
    assert graph.tracing == "fx"
    assert graph.num_cuts >= 3
    with torch.no_grad():
        expected = model(x)
        for k in range(graph.num_cuts + 1):
            assert torch.equal(graph.tail(k)(graph.head(k)(x)), expected), f"cut {k}"


def block_of(node: fx.Node) -> str | None:
    """The residual block (layerN.M) whose forward produced `node`, if any."""
    for module_path, module_type in (node.meta.get("nn_module_stack") or {}).values():
        if module_type.__name__ == "_BasicBlock":
            return str(module_path)
    return None


def test_resnet18_is_cut_only_at_stem_and_block_outputs() -> None:
    _, graph, _ = cut_zoo("resnet18")
    nodes = list(graph.module.graph.nodes)
    by_name = {node.name: node for node in nodes}
    last_of_block = {block_of(node): node.name for node in nodes if block_of(node)}
    cut_blocks = []
    for cut in graph.cut_points:
        block = block_of(by_name[cut.name])
        if block is None:
            # Outside the blocks: the input, the stem and the classifier are top-level layers.
            assert by_name[cut.name].op in {"placeholder", "call_module"}
            assert "." not in str(by_name[cut.name].target)
        else:
            assert cut.name == last_of_block[block], f"{cut.name} is inside {block}"
            cut_blocks.append(block)
    assert cut_blocks == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    assert [c.name for c in graph.cut_points[:3]] == ["input_1", "conv1", "relu"]
