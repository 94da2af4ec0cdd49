"""DenseNets (Huang et al. 2017) for the zoo: 121 (growth 32, stem 64) and 161 (growth 48,
stem 96, Infer-EDGE's largest version), bottlenecks 4x the growth, as torchvision builds them."""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from inferedge.dnn.torch.zoo_layers import SMALL_INPUT_MAX, classifier_tail, named, stem_conv


def _dense_layer(in_ch: int, growth: int) -> nn.Sequential:
    bottleneck = 4 * growth
    return named(
        ("norm1", nn.BatchNorm2d(in_ch)),
        ("relu1", nn.ReLU()),
        ("conv1", nn.Conv2d(in_ch, bottleneck, 1, bias=False)),
        ("norm2", nn.BatchNorm2d(bottleneck)),
        ("relu2", nn.ReLU()),
        ("conv2", nn.Conv2d(bottleneck, growth, 3, padding=1, bias=False)),
    )


class _DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers: int, in_ch: int, growth: int) -> None:
        super().__init__(
            {
                f"denselayer{i + 1}": _dense_layer(in_ch + i * growth, growth)
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


def densenet(
    blocks: tuple[int, ...], growth: int, stem_ch: int, num_classes: int, input_size: int
) -> nn.Sequential:
    """A DenseNet of `blocks` dense layers per block, `growth` channels a layer and a stem of
    `stem_ch` channels; torchvision's at ImageNet sizes."""
    small = input_size <= SMALL_INPUT_MAX
    stem = [
        ("conv0", stem_conv(stem_ch, small)),
        ("norm0", nn.BatchNorm2d(stem_ch)),
        ("relu0", nn.ReLU()),
    ]
    if not small:
        stem.append(("pool0", nn.MaxPool2d(3, stride=2, padding=1)))

    body: list[tuple[str, nn.Module]] = []
    ch = stem_ch
    for index, num_layers in enumerate(blocks, start=1):
        body.append((f"denseblock{index}", _DenseBlock(num_layers, ch, growth)))
        ch += num_layers * growth
        if index < len(blocks):
            transition = named(
                ("norm", nn.BatchNorm2d(ch)),
                ("relu", nn.ReLU()),
                ("conv", nn.Conv2d(ch, ch // 2, 1, bias=False)),
                ("pool", nn.AvgPool2d(2, stride=2)),
            )
            body.append((f"transition{index}", transition))
            ch //= 2
    body.append(("norm5", nn.BatchNorm2d(ch)))

    return named(
        ("features", named(*stem, *body)),
        ("relu", nn.ReLU()),
        *classifier_tail(nn.AdaptiveAvgPool2d(1), nn.Linear(ch, num_classes)),
    )


densenet121 = partial(densenet, (6, 12, 24, 16), 32, 64)
densenet161 = partial(densenet, (6, 12, 36, 24), 48, 96)
