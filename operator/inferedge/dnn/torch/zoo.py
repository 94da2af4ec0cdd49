"""Model zoo: torchvision's classification CNNs written in plain torch.

At ImageNet input sizes each model is torchvision's architecture, down to module names, so
parameter counts match and torchvision state dicts load with `load_state_dict`. Small inputs
(CIFAR, 32x32) get the usual CIFAR stems instead, so early downsampling does not shrink the image
to nothing.

The DenseNets and Inception-v3 live in modules of their own (`zoo_densenet`, `zoo_inception`),
with what the families share in `zoo_layers`.

`small_resnet` is the one model of our own: a residual CNN of about 60k parameters for quick runs
on small images (the twin of the Keras zoo's).

Every model is a `torch.nn.Sequential` that `torch.fx.symbolic_trace` can trace, and its forward
is a pure function of its input. Activations are never in-place, because a partition that starts
at a cut point must not overwrite the tensor it was given, and there are no training-only branches
(Inception's auxiliary classifier is left out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import ClassVar

from torch import Tensor, nn

from inferedge.core.errors import ModelRefError
from inferedge.dnn.torch.zoo_densenet import densenet121, densenet161
from inferedge.dnn.torch.zoo_inception import inception_v3
from inferedge.dnn.torch.zoo_layers import SMALL_INPUT_MAX, classifier_tail, named, stem_conv

_MIN_INPUT_SIZE = 16
_IMAGENET_SIDE = 224
_INCEPTION_IMAGENET_SIDE = 299
_CIFAR_SIDE = 32


# --- ResNet (He et al. 2016; torchvision's v1.5, where the bottleneck stride is on the 3x3) ---


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
    )


class _BasicBlock(nn.Module):
    expansion: ClassVar[int] = 1

    def __init__(self, in_ch: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(out + identity)
        return out


class _Bottleneck(nn.Module):
    expansion: ClassVar[int] = 4

    def __init__(self, in_ch: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(out + identity)
        return out


def _resnet(
    block: type[_BasicBlock | _Bottleneck],
    depths: Sequence[int],
    num_classes: int,
    input_size: int,
) -> nn.Sequential:
    small = input_size <= SMALL_INPUT_MAX
    stem = [("conv1", stem_conv(64, small)), ("bn1", nn.BatchNorm2d(64)), ("relu", nn.ReLU())]
    if not small:
        stem.append(("maxpool", nn.MaxPool2d(3, stride=2, padding=1)))

    stages: list[tuple[str, nn.Module]] = []
    in_ch = 64
    for index, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True)):
        stride = 1 if index == 0 else 2
        out_ch = planes * block.expansion
        needs_projection = stride != 1 or in_ch != out_ch
        blocks = [
            block(
                in_ch,
                planes,
                stride,
                _downsample(in_ch, out_ch, stride) if needs_projection else None,
            )
        ]
        blocks += [block(out_ch, planes, 1, None) for _ in range(depth - 1)]
        stages.append((f"layer{index + 1}", nn.Sequential(*blocks)))
        in_ch = out_ch

    tail = [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten(1))]
    return named(*stem, *stages, *tail, ("fc", nn.Linear(in_ch, num_classes)))


# --- MobileNetV2 (Sandler et al. 2018) ---

# (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2.
_MOBILENET_V2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_MOBILENET_V2_STEM_CH = 32
_MOBILENET_V2_LAST_CH = 1280


def _conv_bn_relu6(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU6(),
    )


class _InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(_conv_bn_relu6(in_ch, hidden, 1))
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv(x)
        return x + out if self.use_res_connect else out


def _mobilenet_v2(num_classes: int, input_size: int) -> nn.Sequential:
    small = input_size <= SMALL_INPUT_MAX
    # CIFAR MobileNetV2 drops two of the five stride-2 steps (stem and the 24-channel stage), so
    # 32 px ends at 4x4 rather than 1x1.
    features: list[nn.Module] = [_conv_bn_relu6(3, _MOBILENET_V2_STEM_CH, 3, 1 if small else 2)]
    in_ch = _MOBILENET_V2_STEM_CH
    for index, (expansion, out_ch, repeats, first_stride) in enumerate(_MOBILENET_V2_STAGES):
        stride = 1 if small and index == 1 else first_stride
        for repeat in range(repeats):
            features.append(
                _InvertedResidual(in_ch, out_ch, stride if repeat == 0 else 1, expansion)
            )
            in_ch = out_ch
    features.append(_conv_bn_relu6(in_ch, _MOBILENET_V2_LAST_CH, 1))

    classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(_MOBILENET_V2_LAST_CH, num_classes))
    return named(
        ("features", nn.Sequential(*features)),
        *classifier_tail(nn.AdaptiveAvgPool2d(1), classifier),
    )


# --- VGG (Simonyan & Zisserman 2015), configurations A and E without batch norm ---

_POOL = "M"
_VGG11 = (64, _POOL, 128, _POOL, 256, 256, _POOL, 512, 512, _POOL, 512, 512, _POOL)
_VGG19 = (
    *(64, 64, _POOL, 128, 128, _POOL),
    *(256, 256, 256, 256, _POOL, 512, 512, 512, 512, _POOL, 512, 512, 512, 512, _POOL),
)


def _vgg(config: Sequence[int | str], num_classes: int, input_size: int) -> nn.Sequential:
    small = input_size <= SMALL_INPUT_MAX
    layers: list[nn.Module] = []
    in_ch = 3
    for item in config:
        if isinstance(item, int):
            layers += [nn.Conv2d(in_ch, item, 3, padding=1), nn.ReLU()]
            in_ch = item
        else:
            # ceil_mode lets 16-31 px inputs survive all five pools; at 32 px it changes nothing.
            layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=small))

    if small:
        # Five pools leave 1x1 maps at 32 px: the 7x7-input ImageNet MLP would only see copies.
        tail = classifier_tail(nn.AdaptiveAvgPool2d(1), nn.Linear(in_ch, num_classes))
    else:
        classifier = nn.Sequential(
            nn.Linear(in_ch * 7 * 7, 4096),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(4096, num_classes),
        )
        tail = classifier_tail(nn.AdaptiveAvgPool2d(7), classifier)
    return named(("features", nn.Sequential(*layers)), *tail)


# --- AlexNet (Krizhevsky et al. 2012, torchvision's single-GPU form): Edgent's network ---


def _alexnet(num_classes: int, input_size: int) -> nn.Sequential:
    small = input_size <= SMALL_INPUT_MAX
    if small:
        # The 11x11/4 stem and three 3x3/2 pools leave nothing of a 32 px image: a 5x5/1 stem
        # and 2x2 pools keep 4x4 maps at 32 px, 2x2 at 16.
        stem = nn.Conv2d(3, 64, 5, padding=2)
        pools = [nn.MaxPool2d(2, stride=2, ceil_mode=True) for _ in range(3)]
    else:
        stem = nn.Conv2d(3, 64, 11, stride=4, padding=2)
        pools = [nn.MaxPool2d(3, stride=2) for _ in range(3)]
    features = nn.Sequential(
        *(stem, nn.ReLU(), pools[0]),
        *(nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), pools[1]),
        *(nn.Conv2d(192, 384, 3, padding=1), nn.ReLU()),
        *(nn.Conv2d(384, 256, 3, padding=1), nn.ReLU()),
        *(nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), pools[2]),
    )
    if small:
        tail = classifier_tail(nn.AdaptiveAvgPool2d(1), nn.Linear(256, num_classes))
    else:
        classifier = nn.Sequential(
            nn.Dropout(0.5),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, num_classes),
        )
        tail = classifier_tail(nn.AdaptiveAvgPool2d(6), classifier)
    return named(("features", features), *tail)


def _small_resnet(num_classes: int, input_size: int) -> nn.Module:
    """A four-stage residual CNN of about 60k parameters that trains on digits in seconds:
    the torch twin of the Keras zoo's `small_resnet`. Adaptive pooling makes it size-agnostic."""
    del input_size
    width = 16

    def stage(in_ch: int, out_ch: int, stride: int) -> list[tuple[str, nn.Module]]:
        return [
            ("conv", nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)),
            ("bn", nn.BatchNorm2d(out_ch)),
            ("relu", nn.ReLU()),
            ("block", _BasicBlock(out_ch, out_ch, 1, None)),
        ]

    stages = [stage(3, width, 1), stage(width, 2 * width, 2), stage(2 * width, 2 * width, 2)]
    layers = [(f"{name}{i + 1}", layer) for i, s in enumerate(stages) for name, layer in s]
    tail = [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten(1))]
    return named(*layers, *tail, ("fc", nn.Linear(2 * width, num_classes)))


# --- Public API ---

_BUILDERS: dict[str, Callable[[int, int], nn.Module]] = {
    "alexnet": _alexnet,
    "densenet121": densenet121,
    "densenet161": densenet161,
    "inception_v3": inception_v3,
    "mobilenet_v2": _mobilenet_v2,
    "resnet18": partial(_resnet, _BasicBlock, (2, 2, 2, 2)),
    "resnet50": partial(_resnet, _Bottleneck, (3, 4, 6, 3)),
    "small_resnet": _small_resnet,
    "vgg11": partial(_vgg, _VGG11),
    "vgg19": partial(_vgg, _VGG19),
}

ZOO_NAMES: tuple[str, ...] = tuple(sorted(_BUILDERS))


def _check_name(name: str) -> None:
    if name not in _BUILDERS:
        raise ModelRefError(f"unknown model {name!r} (available: {', '.join(ZOO_NAMES)})")


def _check_int_at_least(arg: str, value: int, minimum: int) -> None:
    # bool is an int subclass, but `num_classes=True` is a mistake, not the number 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelRefError(f"{arg}: expected an integer >= {minimum}, got {value!r}")


def _init_weights(model: nn.Module) -> None:
    # One torchvision-style scheme for every model, so a model's weights are a function of
    # torch's global seed only.
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)


def build_model(name: str, num_classes: int = 10, input_size: int = 32) -> nn.Module:
    """Build zoo model `name` in eval mode, with weights drawn from torch's global RNG.

    `input_size` is the side length of the square images the model will see: up to 64 px the
    model uses CIFAR stems (Inception-v3 up to 74 px), above that the ImageNet architecture
    exactly as torchvision defines it. The model maps `(N, 3, input_size, input_size)` float
    images to `(N, num_classes)` logits.

    Raises:
        ModelRefError: `name` is not in `ZOO_NAMES`, `num_classes` < 1 or `input_size` < 16.
    """
    _check_name(name)
    _check_int_at_least("num_classes", num_classes, 1)
    _check_int_at_least("input_size", input_size, _MIN_INPUT_SIZE)
    model = _BUILDERS[name](num_classes, input_size)
    _init_weights(model)
    return model.eval()


def default_input_shape(name: str, imagenet: bool = True) -> tuple[int, int, int]:
    """Return the `(channels, height, width)` that model `name` is usually run at.

    That is 3x224x224 (3x299x299 for Inception-v3) for ImageNet and 3x32x32 for CIFAR.

    Raises:
        ModelRefError: `name` is not in `ZOO_NAMES`.
    """
    _check_name(name)
    if not imagenet:
        return (3, _CIFAR_SIDE, _CIFAR_SIDE)
    side = _INCEPTION_IMAGENET_SIDE if name == "inception_v3" else _IMAGENET_SIDE
    return (3, side, side)
