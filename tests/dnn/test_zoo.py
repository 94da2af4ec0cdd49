"""The model zoo: shapes at CIFAR and ImageNet sizes, torchvision parity, fx tracing, errors."""

from __future__ import annotations

import pytest
import torch
from torch import fx, nn

from inferedge.core.errors import ModelRefError
from inferedge.core.zoo import ZOO
from inferedge.dnn.torch.zoo import ZOO_NAMES, build_model, default_input_shape

# torchvision's parameter counts with num_classes=1000 (Inception-v3 without aux logits).
TORCHVISION_PARAMS = {
    "alexnet": 61_100_840,
    "densenet121": 7_978_856,
    "densenet161": 28_681_000,
    "inception_v3": 23_834_568,
    "mobilenet_v2": 3_504_872,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "vgg11": 132_863_336,
    "vgg19": 143_667_240,
}


def _check_forward_and_trace(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run `model` on `x`, check the fx-traced copy agrees bit for bit and `x` is untouched."""
    original = x.clone()
    with torch.no_grad():
        out: torch.Tensor = model(x)
        traced = fx.symbolic_trace(model)(x)
    assert torch.equal(traced, out)
    assert torch.equal(x, original)
    assert torch.isfinite(out).all()
    return out


def test_zoo_names_are_the_ten_models_sorted_and_the_api_knows_them() -> None:
    assert ZOO_NAMES == (
        "alexnet",
        "densenet121",
        "densenet161",
        "inception_v3",
        "mobilenet_v2",
        "resnet18",
        "resnet50",
        "small_resnet",
        "vgg11",
        "vgg19",
    )
    assert ZOO["torch"] == ZOO_NAMES  # what manifests may name is what the zoo builds


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_cifar_size_forward_and_fx_trace(name: str) -> None:
    torch.manual_seed(0)
    shape = default_input_shape(name, imagenet=False)
    assert shape == (3, 32, 32)
    model = build_model(name, num_classes=10, input_size=32)
    assert not any(module.training for module in model.modules())

    out = _check_forward_and_trace(model, torch.randn(2, *shape))

    assert out.shape == (2, 10)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_imagenet_size_forward_and_fx_trace(name: str) -> None:
    torch.manual_seed(0)
    shape = default_input_shape(name)
    assert shape == ((3, 299, 299) if name == "inception_v3" else (3, 224, 224))
    model = build_model(name, num_classes=10, input_size=shape[1])

    out = _check_forward_and_trace(model, torch.randn(1, *shape))

    assert out.shape == (1, 10)


@pytest.mark.parametrize(("name", "expected"), TORCHVISION_PARAMS.items())
def test_imagenet_parameter_count_matches_torchvision(name: str, expected: int) -> None:
    # Meta tensors make building the 140M-parameter VGGs free.
    with torch.device("meta"):
        model = build_model(name, num_classes=1000, input_size=default_input_shape(name)[1])
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("alexnet", "classifier.6.bias"),
        ("densenet121", "features.denseblock4.denselayer16.conv2.weight"),
        ("densenet161", "features.denseblock3.denselayer36.conv2.weight"),
        ("inception_v3", "Mixed_7c.branch3x3dbl_3b.bn.running_var"),
        ("mobilenet_v2", "features.18.1.weight"),
        ("resnet50", "layer4.0.downsample.1.running_mean"),
        ("vgg19", "classifier.6.bias"),
    ],
)
def test_imagenet_state_dict_uses_torchvision_names(name: str, key: str) -> None:
    with torch.device("meta"):
        model = build_model(name, num_classes=1000, input_size=default_input_shape(name)[1])
    assert key in model.state_dict()


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_smallest_input_size_still_has_spatial_extent(name: str) -> None:
    model = build_model(name, num_classes=3, input_size=16)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, 3)


@pytest.mark.parametrize("size", [74, 75])
def test_inception_switches_stem_where_the_imagenet_stem_starts_to_fit(size: int) -> None:
    model = build_model("inception_v3", num_classes=4, input_size=size)
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 4)


def test_cifar_and_imagenet_variants_differ_only_in_the_stem() -> None:
    small = build_model("resnet18", input_size=32).state_dict()
    large = build_model("resnet18", input_size=224).state_dict()
    assert small.keys() == large.keys()
    assert [k for k in small if small[k].shape != large[k].shape] == ["conv1.weight"]


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_weights_are_a_function_of_the_global_seed(name: str) -> None:
    def weights(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return build_model(name).state_dict()

    first, again, other = weights(7), weights(7), weights(8)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_unknown_name_lists_the_available_models() -> None:
    with pytest.raises(ModelRefError) as excinfo:
        build_model("resnet51")
    message = str(excinfo.value)
    assert message == f"unknown model 'resnet51' (available: {', '.join(ZOO_NAMES)})"
    assert "\n" not in message


def test_default_input_shape_rejects_unknown_name() -> None:
    with pytest.raises(ModelRefError, match="unknown model 'lenet'"):
        default_input_shape("lenet", imagenet=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0}, "num_classes: expected an integer >= 1, got 0"),
        ({"num_classes": True}, "num_classes: expected an integer >= 1, got True"),
        ({"num_classes": "10"}, "num_classes: expected an integer >= 1, got '10'"),
        ({"input_size": 15}, "input_size: expected an integer >= 16, got 15"),
        ({"input_size": 32.0}, "input_size: expected an integer >= 16, got 32.0"),
    ],
)
def test_bad_arguments_are_named_in_the_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ModelRefError) as excinfo:
        build_model("resnet18", **kwargs)  # type: ignore[arg-type]
    assert str(excinfo.value) == message
