"""Model zoo: torchvision's classification CNNs written in plain torch.

At ImageNet input sizes each model is torchvision's architecture, down to module names, so
parameter counts match and torchvision state dicts load with `load_state_dict`. Small inputs
(CIFAR, 32x32) get the usual CIFAR stems instead, so early downsampling does not shrink the image
to nothing.

`small_resnet` is the one model of our own: a residual CNN of about 60k parameters for quick runs
on small images (the twin of the Keras zoo's).

Every model is a `torch.nn.Sequential` that `torch.fx.symbolic_trace` can trace, and its forward
is a pure function of its input. Activations are never in-place, because a partition that starts
at a cut point must not overwrite the tensor it was given, and there are no training-only branches
(Inception's auxiliary classifier is left out).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from inferedge.core.errors import ModelRefError

_MIN_INPUT_SIZE = 16
# Side lengths up to this use the CIFAR stems; larger ones use the ImageNet stems.
_SMALL_INPUT_MAX = 64
# Below 75 px, torchvision's Inception-v3 stem and reductions leave an empty map, so Inception
# keeps its CIFAR stem up to 74 px.
_INCEPTION_MIN_IMAGENET_INPUT = 75

_IMAGENET_SIDE = 224
_INCEPTION_IMAGENET_SIDE = 299
_CIFAR_SIDE = 32


def _named(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


def _stem_conv(out_ch: int, small: bool) -> nn.Conv2d:
    # The CIFAR ResNet/DenseNet stem: a 7x7/2 conv plus max-pool would leave 8x8 maps at 32 px.
    if small:
        return nn.Conv2d(3, out_ch, 3, padding=1, bias=False)
    return nn.Conv2d(3, out_ch, 7, stride=2, padding=3, bias=False)


def _classifier_tail(pool: nn.Module, classifier: nn.Module) -> list[tuple[str, nn.Module]]:
    return [("avgpool", pool), ("flatten", nn.Flatten(1)), ("classifier", classifier)]


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
    small = input_size <= _SMALL_INPUT_MAX
    stem = [("conv1", _stem_conv(64, small)), ("bn1", nn.BatchNorm2d(64)), ("relu", nn.ReLU())]
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
    return _named(*stem, *stages, *tail, ("fc", nn.Linear(in_ch, num_classes)))


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
    small = input_size <= _SMALL_INPUT_MAX
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
    return _named(
        ("features", nn.Sequential(*features)),
        *_classifier_tail(nn.AdaptiveAvgPool2d(1), classifier),
    )


# --- VGG (Simonyan & Zisserman 2015), configurations A and E without batch norm ---

_POOL = "M"
_VGG11 = (64, _POOL, 128, _POOL, 256, 256, _POOL, 512, 512, _POOL, 512, 512, _POOL)
_VGG19 = (
    *(64, 64, _POOL, 128, 128, _POOL),
    *(256, 256, 256, 256, _POOL, 512, 512, 512, 512, _POOL, 512, 512, 512, 512, _POOL),
)


def _vgg(config: Sequence[int | str], num_classes: int, input_size: int) -> nn.Sequential:
    small = input_size <= _SMALL_INPUT_MAX
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
        tail = _classifier_tail(nn.AdaptiveAvgPool2d(1), nn.Linear(in_ch, num_classes))
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
        tail = _classifier_tail(nn.AdaptiveAvgPool2d(7), classifier)
    return _named(("features", nn.Sequential(*layers)), *tail)


# --- DenseNet-121 (Huang et al. 2017): growth 32, bottleneck width 4x growth ---

_DENSENET_GROWTH = 32
_DENSENET_BOTTLENECK = 4 * _DENSENET_GROWTH
_DENSENET121_BLOCKS = (6, 12, 24, 16)
_DENSENET_STEM_CH = 64


def _dense_layer(in_ch: int) -> nn.Sequential:
    return _named(
        ("norm1", nn.BatchNorm2d(in_ch)),
        ("relu1", nn.ReLU()),
        ("conv1", nn.Conv2d(in_ch, _DENSENET_BOTTLENECK, 1, bias=False)),
        ("norm2", nn.BatchNorm2d(_DENSENET_BOTTLENECK)),
        ("relu2", nn.ReLU()),
        ("conv2", nn.Conv2d(_DENSENET_BOTTLENECK, _DENSENET_GROWTH, 3, padding=1, bias=False)),
    )


class _DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers: int, in_ch: int) -> None:
        super().__init__(
            {
                f"denselayer{i + 1}": _dense_layer(in_ch + i * _DENSENET_GROWTH)
                for i in range(num_layers)
            }
        )

    def forward(self, x: Tensor) -> Tensor:
        # Each layer sees the concatenation of every earlier output, as in the paper; keeping the
        # outputs apart leaves them all live inside the block, so no cut point falls there.
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


def _densenet121(num_classes: int, input_size: int) -> nn.Sequential:
    small = input_size <= _SMALL_INPUT_MAX
    stem = [
        ("conv0", _stem_conv(_DENSENET_STEM_CH, small)),
        ("norm0", nn.BatchNorm2d(_DENSENET_STEM_CH)),
        ("relu0", nn.ReLU()),
    ]
    if not small:
        stem.append(("pool0", nn.MaxPool2d(3, stride=2, padding=1)))

    body: list[tuple[str, nn.Module]] = []
    ch = _DENSENET_STEM_CH
    for index, num_layers in enumerate(_DENSENET121_BLOCKS, start=1):
        body.append((f"denseblock{index}", _DenseBlock(num_layers, ch)))
        ch += num_layers * _DENSENET_GROWTH
        if index < len(_DENSENET121_BLOCKS):
            transition = _named(
                ("norm", nn.BatchNorm2d(ch)),
                ("relu", nn.ReLU()),
                ("conv", nn.Conv2d(ch, ch // 2, 1, bias=False)),
                ("pool", nn.AvgPool2d(2, stride=2)),
            )
            body.append((f"transition{index}", transition))
            ch //= 2
    body.append(("norm5", nn.BatchNorm2d(ch)))

    return _named(
        ("features", _named(*stem, *body)),
        ("relu", nn.ReLU()),
        *_classifier_tail(nn.AdaptiveAvgPool2d(1), nn.Linear(ch, num_classes)),
    )


# --- Inception-v3 (Szegedy et al. 2016), without the auxiliary classifier ---


def _basic_conv(
    in_ch: int,
    out_ch: int,
    kernel: int | tuple[int, int],
    stride: int = 1,
    padding: int | tuple[int, int] = 0,
) -> nn.Sequential:
    return _named(
        ("conv", nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=False)),
        ("bn", nn.BatchNorm2d(out_ch, eps=0.001)),
        ("relu", nn.ReLU()),
    )


def _conv_1x7(in_ch: int, out_ch: int) -> nn.Sequential:
    return _basic_conv(in_ch, out_ch, (1, 7), padding=(0, 3))


def _conv_7x1(in_ch: int, out_ch: int) -> nn.Sequential:
    return _basic_conv(in_ch, out_ch, (7, 1), padding=(3, 0))


def _avg_pool_3x3(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)


class _InceptionA(nn.Module):
    """35x35 block (at 299 px): 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, in_ch: int, pool_ch: int) -> None:
        super().__init__()
        self.branch1x1 = _basic_conv(in_ch, 64, 1)
        self.branch5x5_1 = _basic_conv(in_ch, 48, 1)
        self.branch5x5_2 = _basic_conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _basic_conv(in_ch, 64, 1)
        self.branch3x3dbl_2 = _basic_conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _basic_conv(96, 96, 3, padding=1)
        self.branch_pool = _basic_conv(in_ch, pool_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, branch_pool], 1)


class _InceptionB(nn.Module):
    """Grid reduction 35x35 -> 17x17 (at 299 px)."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3 = _basic_conv(in_ch, 384, 3, stride=2)
        self.branch3x3dbl_1 = _basic_conv(in_ch, 64, 1)
        self.branch3x3dbl_2 = _basic_conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _basic_conv(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([self.branch3x3(x), branch3x3dbl, branch_pool], 1)


class _InceptionC(nn.Module):
    """17x17 block (at 299 px) with factorised 7x7 convolutions."""

    def __init__(self, in_ch: int, mid_ch: int) -> None:
        super().__init__()
        self.branch1x1 = _basic_conv(in_ch, 192, 1)
        self.branch7x7_1 = _basic_conv(in_ch, mid_ch, 1)
        self.branch7x7_2 = _conv_1x7(mid_ch, mid_ch)
        self.branch7x7_3 = _conv_7x1(mid_ch, 192)
        self.branch7x7dbl_1 = _basic_conv(in_ch, mid_ch, 1)
        self.branch7x7dbl_2 = _conv_7x1(mid_ch, mid_ch)
        self.branch7x7dbl_3 = _conv_1x7(mid_ch, mid_ch)
        self.branch7x7dbl_4 = _conv_7x1(mid_ch, mid_ch)
        self.branch7x7dbl_5 = _conv_1x7(mid_ch, 192)
        self.branch_pool = _basic_conv(in_ch, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        branch7x7dbl = self.branch7x7dbl_3(self.branch7x7dbl_2(branch7x7dbl))
        branch7x7dbl = self.branch7x7dbl_5(self.branch7x7dbl_4(branch7x7dbl))
        branch_pool = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), branch7x7, branch7x7dbl, branch_pool], 1)


class _InceptionD(nn.Module):
    """Grid reduction 17x17 -> 8x8 (at 299 px)."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3_1 = _basic_conv(in_ch, 192, 1)
        self.branch3x3_2 = _basic_conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _basic_conv(in_ch, 192, 1)
        self.branch7x7x3_2 = _conv_1x7(192, 192)
        self.branch7x7x3_3 = _conv_7x1(192, 192)
        self.branch7x7x3_4 = _basic_conv(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        branch7x7x3 = self.branch7x7x3_4(self.branch7x7x3_3(branch7x7x3))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch7x7x3, branch_pool], 1)


class _InceptionE(nn.Module):
    """8x8 block (at 299 px) whose 3x3 branches split into parallel 1x3 and 3x1 convolutions."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch1x1 = _basic_conv(in_ch, 320, 1)
        self.branch3x3_1 = _basic_conv(in_ch, 384, 1)
        self.branch3x3_2a = _basic_conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _basic_conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _basic_conv(in_ch, 448, 1)
        self.branch3x3dbl_2 = _basic_conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _basic_conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _basic_conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _basic_conv(in_ch, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat(
            [self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1
        )
        branch_pool = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, branch_pool], 1)


def _inception_v3(num_classes: int, input_size: int) -> nn.Sequential:
    stem: list[tuple[str, nn.Module]]
    if input_size < _INCEPTION_MIN_IMAGENET_INPUT:
        # CIFAR stem: padded convs with no pooling, and one stride-2 conv at the end so the
        # Inception-A blocks see 16x16 at 32 px (35x35 at 299). At full resolution they would
        # more than triple the FLOPs.
        stem = [
            ("Conv2d_1a_3x3", _basic_conv(3, 32, 3, padding=1)),
            ("Conv2d_2a_3x3", _basic_conv(32, 32, 3, padding=1)),
            ("Conv2d_2b_3x3", _basic_conv(32, 64, 3, padding=1)),
            ("Conv2d_3b_1x1", _basic_conv(64, 80, 1)),
            ("Conv2d_4a_3x3", _basic_conv(80, 192, 3, stride=2, padding=1)),
        ]
    else:
        stem = [
            ("Conv2d_1a_3x3", _basic_conv(3, 32, 3, stride=2)),
            ("Conv2d_2a_3x3", _basic_conv(32, 32, 3)),
            ("Conv2d_2b_3x3", _basic_conv(32, 64, 3, padding=1)),
            ("maxpool1", nn.MaxPool2d(3, stride=2)),
            ("Conv2d_3b_1x1", _basic_conv(64, 80, 1)),
            ("Conv2d_4a_3x3", _basic_conv(80, 192, 3)),
            ("maxpool2", nn.MaxPool2d(3, stride=2)),
        ]
    blocks: list[tuple[str, nn.Module]] = [
        ("Mixed_5b", _InceptionA(192, pool_ch=32)),
        ("Mixed_5c", _InceptionA(256, pool_ch=64)),
        ("Mixed_5d", _InceptionA(288, pool_ch=64)),
        ("Mixed_6a", _InceptionB(288)),
        ("Mixed_6b", _InceptionC(768, mid_ch=128)),
        ("Mixed_6c", _InceptionC(768, mid_ch=160)),
        ("Mixed_6d", _InceptionC(768, mid_ch=160)),
        ("Mixed_6e", _InceptionC(768, mid_ch=192)),
        ("Mixed_7a", _InceptionD(768)),
        ("Mixed_7b", _InceptionE(1280)),
        ("Mixed_7c", _InceptionE(2048)),
    ]
    tail = [
        ("avgpool", nn.AdaptiveAvgPool2d(1)),
        ("dropout", nn.Dropout(0.5)),
        ("flatten", nn.Flatten(1)),
        ("fc", nn.Linear(2048, num_classes)),
    ]
    return _named(*stem, *blocks, *tail)


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
    return _named(*layers, *tail, ("fc", nn.Linear(2 * width, num_classes)))


# --- Public API ---

_BUILDERS: dict[str, Callable[[int, int], nn.Module]] = {
    "densenet121": _densenet121,
    "inception_v3": _inception_v3,
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
