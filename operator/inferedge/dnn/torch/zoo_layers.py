"""What the zoo's model families share: how a model is named layer by layer, its stem and its
classifier tail, and the input sizes where the CIFAR variants give way to ImageNet's."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

SMALL_INPUT_MAX = 64
"""Side lengths up to this use the CIFAR stems; larger ones use the ImageNet stems."""


def named(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    """A Sequential whose children carry torchvision's names, so its state dicts load."""
    return nn.Sequential(OrderedDict(layers))


def stem_conv(out_ch: int, small: bool) -> nn.Conv2d:
    """The first convolution of a ResNet or a DenseNet, CIFAR's for small inputs."""
    # The CIFAR ResNet/DenseNet stem: a 7x7/2 conv plus max-pool would leave 8x8 maps at 32 px.
    if small:
        return nn.Conv2d(3, out_ch, 3, padding=1, bias=False)
    return nn.Conv2d(3, out_ch, 7, stride=2, padding=3, bias=False)


def classifier_tail(pool: nn.Module, classifier: nn.Module) -> list[tuple[str, nn.Module]]:
    """Pool, flatten and classify, under torchvision's names."""
    return [("avgpool", pool), ("flatten", nn.Flatten(1)), ("classifier", classifier)]
