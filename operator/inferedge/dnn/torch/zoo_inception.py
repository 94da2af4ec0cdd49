"""Inception-v3 (Szegedy et al. 2016) for the zoo, without the auxiliary classifier (a
training-only branch), as torchvision builds it from 75 px up."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from inferedge.dnn.torch.zoo_layers import named

# Below 75 px, torchvision's Inception-v3 stem and reductions leave an empty map, so Inception
# keeps its CIFAR stem up to 74 px.
_INCEPTION_MIN_IMAGENET_INPUT = 75


def _basic_conv(
    in_ch: int,
    out_ch: int,
    kernel: int | tuple[int, int],
    stride: int = 1,
    padding: int | tuple[int, int] = 0,
) -> nn.Sequential:
    return named(
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


def inception_v3(num_classes: int, input_size: int) -> nn.Sequential:
    """Inception-v3, torchvision's from 75 px up, a CIFAR stem below."""
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
    return named(*stem, *blocks, *tail)
