"""Exit heads, whatever the framework: which spec layers a head is, and the backbone's own
classifier read back as spec layers.

Each backend renders `inferedge.core.exits` layers with its own modules and reads its own graph;
resolving a head spec, and the rules that turn a backbone's classifier into a head spec, are
the same everywhere, so `replicate-classifier` means the same head in every framework.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from inferedge.core.exits import ExitHeadSpec, Layer, Linear, Shape, preset_layers


def resolve_layers(
    spec: ExitHeadSpec, in_shape: Shape, classifier: Callable[[], tuple[Layer, ...]]
) -> tuple[Layer, ...]:
    """The layers of `spec` for an exit whose activation has shape `in_shape` (C x H x W);
    `classifier()` reads the backbone's classifier, only when the preset replicates it."""
    if spec.layers is not None:
        return spec.layers
    assert spec.preset is not None  # ExitHeadSpec guarantees exactly one of the two
    replica = classifier() if spec.preset == "replicate-classifier" else ()
    return preset_layers(spec.preset, in_shape, replica)


def classifier_spec(layers: Sequence[Layer]) -> tuple[Layer, ...]:
    """A backbone's classifier, mapped layer by layer, as a head spec: its last linear layer
    gives `num_classes`. Returns () when there is no linear layer to do so."""
    linears = [i for i, layer in enumerate(layers) if isinstance(layer, Linear)]
    if not linears:
        return ()
    final = layers[linears[-1]]
    assert isinstance(final, Linear)
    spec = list(layers)
    spec[linears[-1]] = Linear(out_features="num_classes", bias=final.bias)
    return tuple(spec)


def square(value: object) -> int | None:
    """An int, or the side of a square (n, n) size; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, tuple | list) and len(value) == 2 and value[0] == value[1]:
        return square(value[0])
    return None
