"""Cut points of Keras models: every zoo model splits at every cut, user models of every kind."""

from __future__ import annotations

import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from inferedge.core.errors import ModelRefError
from inferedge.core.zoo import ZOO
from inferedge.dnn.tensorflow.backend import KerasBackend, prepare
from inferedge.dnn.tensorflow.export import save_model
from inferedge.dnn.tensorflow.graph import CutGraph, build_cut_graph
from inferedge.dnn.tensorflow.layout import to_internal
from inferedge.dnn.tensorflow.loader import load_model
from inferedge.dnn.tensorflow.zoo import ZOO_NAMES

REPO = Path(__file__).resolve().parents[3]
# The smallest input each zoo model takes, so cutting all of them stays fast.
ZOO_SHAPES = {
    "inception_v3": (3, 75, 75),
    "mobilenet_v2": (3, 32, 32),
    "resnet50": (3, 32, 32),
    "small_resnet": (3, 16, 16),
}
# Worst |tail(k)(head(k)(x)) - model(x)| over all cuts; filled in by the zoo test, for the log.
MAX_DIFFS: dict[str, float] = {}


def batch(shape: tuple[int, ...], n: int = 2, seed: int = 1) -> np.ndarray:
    """A channels-last random batch for per-sample `shape` (C x H x W)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *to_internal(shape))).astype(np.float32)


def chain_error(graph: CutGraph, x: np.ndarray) -> float:
    """The largest deviation from the model's output of head(k) then tail(k), over every k."""
    expected = np.asarray(graph.model(x, training=False))
    worst = 0.0
    for k in range(graph.num_cuts + 1):
        middle = graph.head(k)(x, training=False)
        out = np.asarray(graph.tail(k)(middle, training=False))
        worst = max(worst, float(np.abs(out - expected).max()))
    return worst


def test_zoo_names() -> None:
    assert ZOO_NAMES == ("inception_v3", "mobilenet_v2", "resnet50", "small_resnet")
    assert ZOO["tensorflow"] == ZOO_NAMES  # what manifests may name is what the zoo builds


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_head_then_tail_reproduces_every_zoo_model_at_every_cut(name: str) -> None:
    shape = ZOO_SHAPES[name]
    _, graph = prepare(name, 10, shape)
    assert graph.num_cuts >= 10
    assert graph.cut_points[0].shape == shape
    assert graph.cut_points[-1].shape == (10,)
    MAX_DIFFS[name] = chain_error(graph, batch(shape))
    assert MAX_DIFFS[name] <= 1e-5, MAX_DIFFS


def test_every_segment_chained_reproduces_the_model() -> None:
    _, graph = prepare("small_resnet", 10, (3, 16, 16))
    x = batch((3, 16, 16))
    value: Any = x
    for i in range(1, graph.num_cuts + 1):
        value = graph.segment(i)(value, training=False)
        assert tuple(value.shape[1:]) == graph.internal_shape(i)
    expected = np.asarray(graph.model(x, training=False))
    assert np.abs(np.asarray(value) - expected).max() <= 1e-5


def test_resnet50_is_cut_only_between_blocks() -> None:
    _, graph = prepare("resnet50", 10, (3, 32, 32))
    names = [c.name for c in graph.cut_points]
    blocks = [n for n in names if n.endswith("_out")]
    # Keras names each residual block's output `conv<stage>_block<n>_out`: 3 + 4 + 6 + 3 blocks.
    # At 32 px the last block's map is 1x1, so global pooling changes no size and costs nothing:
    # that cut is the same as the pooled one, and only the later is kept.
    assert (
        blocks
        == [
            f"conv{stage}_block{b}_out"
            for stage, depth in ((2, 3), (3, 4), (4, 6), (5, 3))
            for b in range(1, depth + 1)
        ][:-1]
    )
    assert graph.cut_points[names.index("avg_pool")].shape == (2048,)
    inside = [n for n in names if "_block" in n and not n.endswith("_out")]
    assert inside == []
    assert names[-2:] == ["avg_pool", "predictions"]


def test_cut_points_carry_costs_and_shapes_in_chw() -> None:
    _, graph = prepare("small_resnet", 10, (3, 16, 16))
    cuts = graph.cut_points
    assert [c.index for c in cuts] == list(range(len(cuts)))
    assert (cuts[0].cum_flops, cuts[0].cum_param_bytes) == (0, 0)
    for prev, cut in pairwise(cuts):
        assert cut.cum_flops >= prev.cum_flops
        assert cut.cum_param_bytes >= prev.cum_param_bytes
        assert cut.activation_bytes == 4 * int(np.prod(cut.shape))
    # The first stage keeps 16 channels at 16x16; the stem conv is its own cut (BN follows).
    assert cuts[1].shape == (16, 16, 16)
    model = graph.model
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert cuts[-1].cum_param_bytes == 4 * trainable
    assert all(graph.segment_peak_bytes(i) > 0 for i in range(1, graph.num_cuts + 1))


def test_cut_names_do_not_depend_on_models_built_before() -> None:
    first = KerasBackend().cut_points("small_resnet", 10, (3, 16, 16))
    keras.layers.Conv2D(4, 3)  # moves Keras' layer-name counters on
    second = KerasBackend().cut_points("small_resnet", 10, (3, 16, 16))
    assert first == second


def test_cut_names_are_the_same_in_a_fresh_process() -> None:
    code = (
        "from inferedge.dnn.tensorflow.backend import KerasBackend;"
        "print([c.name for c in KerasBackend().cut_points('small_resnet', 10, (3, 16, 16))])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    here = [c.name for c in KerasBackend().cut_points("small_resnet", 10, (3, 16, 16))]
    assert result.stdout.strip() == str(here)


@pytest.mark.parametrize(
    ("factory", "shape", "min_cuts"),
    [
        ("plain_cnn", (3, 16, 16), 6),
        ("nested_blocks", (3, 16, 16), 4),
        ("flexible_cnn", (3, 12, 20), 2),
    ],
)
def test_user_models_are_traced_and_cut(
    factory: str, shape: tuple[int, ...], min_cuts: int
) -> None:
    loaded = load_model(f"tests.dnn.tensorflow.models:{factory}", 10, shape)
    graph = build_cut_graph(loaded.model, shape, name=factory)
    assert graph.num_cuts >= min_cuts
    x = batch(shape)
    assert chain_error(graph, x) <= 1e-5
    # The traced graph shares the user's layers: it computes what the user's model computes.
    expected = np.asarray(loaded.model(x, training=False))
    assert np.abs(np.asarray(graph.model(x, training=False)) - expected).max() <= 1e-5


def test_nested_models_are_inlined_so_their_blocks_can_be_cut() -> None:
    loaded = load_model("tests.dnn.tensorflow.models:nested_blocks", 10, (3, 16, 16))
    graph = build_cut_graph(loaded.model, (3, 16, 16), name="nested")
    names = [c.name for c in graph.cut_points]
    # Inside the stem (a nested Sequential) the conv and the ReLU are cuts of their own; inside
    # the residual block (a nested functional model) nothing is, until its final ReLU.
    stem = [layer.name for layer in loaded.model.get_layer("stem").layers]
    assert names[1] == stem[0]
    assert stem[2] in names
    block = loaded.model.get_layer("block")
    inner = [layer.name for layer in block.layers[1:]]
    assert [n for n in names if n in inner] == [inner[-1]]


def test_nested_models_that_cannot_be_inlined_are_cut_around() -> None:
    # Inlining would put two layers named "act" into one graph, which Keras refuses; the
    # nested blocks then stay whole, and the model is still cut and runs as itself.
    loaded = load_model("tests.dnn.tensorflow.models:clashing_blocks", 10, (3, 16, 16))
    graph = build_cut_graph(loaded.model, (3, 16, 16), name="clashing")
    names = [c.name for c in graph.cut_points]
    assert "act" not in names
    assert names[-2:] == ["global_average_pooling2d", "dense"]
    assert chain_error(graph, batch((3, 16, 16))) <= 1e-5


def test_a_keras_file_is_cut_like_the_model_it_holds(tmp_path: Path) -> None:
    loaded = load_model("small_resnet", 10, (3, 16, 16))
    path = tmp_path / "mine.keras"
    save_model(loaded.model, path)
    from_file, graph = prepare(str(path), 10, (3, 16, 16))
    assert (from_file.name, from_file.kind) == ("mine", "keras")
    assert graph.cut_points == build_cut_graph(loaded.model, (3, 16, 16), name="x").cut_points


def test_a_saved_model_is_one_opaque_segment(tmp_path: Path) -> None:
    loaded = load_model("small_resnet", 10, (3, 16, 16))
    path = tmp_path / "exported"
    loaded.model.export(str(path), verbose=False)
    from_dir, graph = prepare(str(path), 10, (3, 16, 16))
    assert from_dir.kind == "savedmodel"
    assert [c.shape for c in graph.cut_points] == [(3, 16, 16), (10,)]
    x = batch((3, 16, 16))
    expected = np.asarray(loaded.model(x, training=False))
    assert np.abs(np.asarray(graph.model(x)) - expected).max() <= 1e-5


@pytest.mark.parametrize(
    ("ref", "shape", "message"),
    [
        ("tests.dnn.tensorflow.models:softmax_cnn", (3, 16, 16), r"ends in a softmax .*logits"),
        (
            "tests.dnn.tensorflow.models:two_inputs",
            (3, 16, 16),
            r"takes 2 inputs; only single-input",
        ),
        (
            "tests.dnn.tensorflow.models:subclassed",
            (3, 16, 16),
            r"is a subclassed .* no layer graph",
        ),
        (
            "tests.dnn.tensorflow.models:nested_blocks",
            (3, 8, 8),
            r"takes inputs of shape \(16, 16, 3\) \(Keras, channels-last\), not \(8, 8, 3\)",
        ),
        ("tests.dnn.tensorflow.models:plain_cnn", (1, 16, 16, 2), r"cannot be built for inputs"),
        ("resnet50", (3, 16, 16), r"needs images of at least 32x32, got 3x16x16"),
        ("mobilenet_v2", (1, 32, 32), r"takes RGB images \(3, H, W\)"),
        ("vgg11", (3, 32, 32), r"unknown model 'vgg11': not a zoo name"),
        ("tests.dnn.tensorflow.models:nothing", (3, 16, 16), r"has no attribute 'nothing'"),
        ("missing.keras", (3, 16, 16), r"model file 'missing.keras' does not exist"),
    ],
)
def test_models_that_cannot_be_cut_are_one_line_errors(
    ref: str, shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ModelRefError, match=message) as info:
        prepare(ref, 10, shape)
    assert "\n" not in str(info.value)


def test_output_must_match_num_classes(tmp_path: Path) -> None:
    path = tmp_path / "ten.keras"
    save_model(load_model("small_resnet", 10, (3, 16, 16)).model, path)
    with pytest.raises(ModelRefError, match=r"outputs shape \(10,\) per sample, expected \(5,\)"):
        KerasBackend().cut_points(str(path), 5, (3, 16, 16))


def test_a_corrupt_keras_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.keras"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(ModelRefError, match=r"'.*broken.keras': not a .keras archive"):
        prepare(str(path), 10, (3, 16, 16))


def test_sub_models_are_built_once_and_validate_their_range() -> None:
    _, graph = prepare("small_resnet", 10, (3, 16, 16))
    assert graph.between(2, 5) is graph.between(2, 5)
    identity = graph.between(3, 3)
    x = np.ones((1, *graph.internal_shape(3)), dtype=np.float32)
    assert np.array_equal(np.asarray(identity(x)), x)
    with pytest.raises(IndexError):
        graph.between(4, 2)
    with pytest.raises(IndexError):
        graph.segment(0)
