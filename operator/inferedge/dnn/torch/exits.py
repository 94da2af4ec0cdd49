"""Exit heads in torch: spec layers rendered as modules, and as readable PyTorch source.

A head is an `nn.Sequential` built from `inferedge.core.exits` layers after `check_head` has
proved that it turns its exit point's activation into class logits. `torch_source` writes the
same head as a stand-alone module definition whose state dict is interchangeable with the
rendered one; it is generated from the same constructor calls, so the two cannot drift apart.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import ValidationError
from torch import fx, nn

from inferedge.core.exits import (
    AdaptivePool,
    AvgPool,
    BatchNorm,
    Conv2d,
    Dropout,
    ExitHeadSpec,
    Flatten,
    Layer,
    Linear,
    MaxPool,
    ReLU,
    Shape,
    check_head,
)
from inferedge.dnn import heads
from inferedge.dnn.heads import classifier_spec, square
from inferedge.dnn.torch.graph import CutGraph


class MixedPool(nn.Module):
    """SDN's mixed pooling: a learned blend of adaptive max and average pooling.

    The output is sigmoid(blend) * max + (1 - sigmoid(blend)) * avg, with `blend` one learnable
    scalar that starts at 0 (an even blend).
    """

    def __init__(self, output_size: int) -> None:
        super().__init__()
        self.output_size = output_size
        self.blend = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch.sigmoid(self.blend)
        maxed = nn.functional.adaptive_max_pool2d(x, self.output_size)
        averaged = nn.functional.adaptive_avg_pool2d(x, self.output_size)
        return weight * maxed + (1 - weight) * averaged

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


@dataclass(frozen=True)
class _Call:
    """One constructor call: the module class, its positional and its keyword arguments."""

    cls: type[nn.Module]
    args: tuple[object, ...] = ()
    kwargs: dict[str, object] = field(default_factory=dict)

    def build(self) -> nn.Module:
        return self.cls(*self.args, **self.kwargs)

    def source(self) -> str:
        prefix = "" if self.cls is MixedPool else "nn."
        rendered = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{prefix}{self.cls.__name__}({', '.join(rendered)})"


def _pool_kwargs(layer: MaxPool | AvgPool) -> dict[str, object]:
    kwargs: dict[str, object] = {}
    if layer.stride is not None and layer.stride != layer.kernel_size:
        kwargs["stride"] = layer.stride
    if layer.padding:
        kwargs["padding"] = layer.padding
    if layer.ceil_mode:
        kwargs["ceil_mode"] = True
    return kwargs


def _call(layer: Layer, shape: Shape, num_classes: int) -> _Call:
    """The torch constructor call for `layer` receiving per-sample tensors of `shape`."""
    if isinstance(layer, Conv2d):
        kwargs: dict[str, object] = {}
        if layer.stride != 1:
            kwargs["stride"] = layer.stride
        if layer.padding:
            kwargs["padding"] = layer.padding
        if not layer.bias:
            kwargs["bias"] = False
        return _Call(nn.Conv2d, (shape[0], layer.out_channels, layer.kernel_size), kwargs)
    if isinstance(layer, BatchNorm):
        return _Call(nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d, (shape[0],))
    if isinstance(layer, ReLU):
        return _Call(nn.ReLU)
    if isinstance(layer, MaxPool):
        return _Call(nn.MaxPool2d, (layer.kernel_size,), _pool_kwargs(layer))
    if isinstance(layer, AvgPool):
        return _Call(nn.AvgPool2d, (layer.kernel_size,), _pool_kwargs(layer))
    if isinstance(layer, AdaptivePool):
        pool = {"avg": nn.AdaptiveAvgPool2d, "max": nn.AdaptiveMaxPool2d, "mixed": MixedPool}
        return _Call(pool[layer.mode], (layer.output_size,))
    if isinstance(layer, Flatten):
        return _Call(nn.Flatten)
    if isinstance(layer, Linear):
        out = num_classes if layer.out_features == "num_classes" else layer.out_features
        return _Call(nn.Linear, (shape[0], out), {} if layer.bias else {"bias": False})
    return _Call(nn.Dropout, (), {"p": layer.p})


def _calls(
    layers: tuple[Layer, ...], in_shape: Shape, num_classes: int, where: str
) -> list[tuple[_Call, Shape]]:
    """Each layer's constructor call with the shape it produces, after checking the head."""
    shapes = check_head(layers, in_shape, num_classes, where)
    return [
        (_call(layer, shape, num_classes), out)
        for layer, shape, out in zip(layers, shapes[:-1], shapes[1:], strict=True)
    ]


def render_head(
    layers: tuple[Layer, ...], in_shape: Shape, num_classes: int, where: str = "exit head"
) -> nn.Sequential:
    """The head as an `nn.Sequential`, with parameters drawn from torch's global RNG.

    Raises `ExitSpecError` (naming `where`, the layer and the mismatch) when the layers do not
    turn a per-sample tensor of `in_shape` into `num_classes` logits.
    """
    return nn.Sequential(
        *(call.build() for call, _ in _calls(layers, in_shape, num_classes, where))
    )


def torch_source(
    layers: tuple[Layer, ...], in_shape: Shape, num_classes: int, class_name: str = "ExitHead"
) -> str:
    """Stand-alone PyTorch source of a module equivalent to `render_head(...)`.

    The class subclasses `nn.Sequential` with the same children, so state dicts are
    interchangeable; each line notes the shape it produces.
    """
    if not class_name.isidentifier():
        raise ValueError(f"class_name must be a Python identifier, got {class_name!r}")
    calls = _calls(layers, in_shape, num_classes, class_name)
    lines = [f"            {call.source()},  # -> {_describe(out)}" for call, out in calls]
    mixed = any(call.cls is MixedPool for call, _ in calls)
    header = "import torch\nfrom torch import nn\n" if mixed else "from torch import nn\n"
    helper = f"\n\n{inspect.getsource(MixedPool)}" if mixed else ""
    return (
        f"{header}{helper}\n\n"
        f"class {class_name}(nn.Sequential):\n"
        f'    """Exit head: {_describe(in_shape)} activation -> {num_classes} class logits."""\n'
        "\n"
        "    def __init__(self) -> None:\n"
        "        super().__init__(\n" + "\n".join(lines) + "\n        )\n"
    )


def _describe(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def resolve_layers(spec: ExitHeadSpec, in_shape: Shape, graph: CutGraph) -> tuple[Layer, ...]:
    """The layers of `spec` for an exit whose activation has shape `in_shape`."""
    return heads.resolve_layers(spec, in_shape, lambda: classifier_layers(graph))


# --- Running a frozen backbone with exits ---


def module_device(module: nn.Module) -> torch.device:
    """The device of `module`'s parameters (the CPU for a module without any)."""
    first = next(module.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for `modules` inside the block; as they were afterwards."""
    modes = [(m, m.training) for module in modules for m in module.modules()]
    flags = [(p, p.requires_grad) for module in modules for p in module.parameters()]
    # Flags are set directly: an exported program's module refuses .eval().
    for module, _ in modes:
        module.training = False
    for param, _ in flags:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode
        for param, flag in flags:
            param.requires_grad_(flag)


class Taps:
    """Runs a backbone segment by segment and returns its activations at the chosen cuts.

    Cut 0 is the input itself and cut K the model's output. Gradients are not recorded.
    """

    def __init__(self, graph: CutGraph, cuts: Sequence[int]) -> None:
        graph.check_taps(cuts)
        self.cuts = tuple(cuts)
        self._device = module_device(graph.module)
        self._segments = [graph.segment(i) for i in range(1, max(cuts, default=0) + 1)]

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activations at each cut, in the order the cuts were given."""
        x = x.to(self._device)
        found = {0: x}
        with torch.no_grad():
            for i, segment in enumerate(self._segments, start=1):
                x = segment(x)
                found[i] = x
        return [found[cut] for cut in self.cuts]


# --- The backbone's own classifier as spec layers ---

_MISSING = object()
_aten = torch.ops.aten


def classifier_layers(graph: CutGraph) -> tuple[Layer, ...]:
    """The backbone's classifier (everything after its last C x H x W cut point) as spec layers.

    The last linear layer gives `num_classes`. Returns () when that part of the graph is not a
    plain chain of layers the spec can express (a ReLU6, a dilated pool, a branch, ...).
    """
    maps = [c for c in graph.cut_points if len(c.shape) == 3]
    if not maps:
        return ()
    nodes = list(graph.module.graph.nodes)
    start = next(i for i, n in enumerate(nodes) if n.name == maps[-1].name)
    previous = nodes[start]
    layers: list[Layer] = []
    for node in nodes[start + 1 :]:
        if node.op == "get_attr":
            continue
        if node.op == "output":
            if _output_value(node) is not previous:
                return ()
            break
        if not _continues_chain(node, previous):
            return ()
        try:
            mapped = _map_node(node, graph.module)
        except ValidationError:  # a value outside the spec's bounds, e.g. a 100x100 pool
            return ()
        if mapped is None:
            return ()
        layers += mapped
        previous = node
    return classifier_spec(layers)


def _output_value(output: fx.Node) -> object:
    value = output.args[0]
    # Export graphs return a 1-tuple.
    return value[0] if isinstance(value, tuple | list) and len(value) == 1 else value


def _continues_chain(node: fx.Node, previous: fx.Node) -> bool:
    """Whether `node` takes `previous` as its first argument and no other activation."""
    return (
        bool(node.args)
        and node.args[0] is previous
        and all(n is previous or n.op == "get_attr" for n in node.all_input_nodes)
    )


def _map_node(node: fx.Node, root: fx.GraphModule) -> list[Layer] | None:
    """Spec layers doing what `node` does ([] for an identity), or None if there are none."""
    if node.op == "call_module":
        return _map_module(root.get_submodule(str(node.target)))
    if node.op == "call_method":
        if node.target == "relu":
            return [ReLU()]
        if node.target == "flatten":
            return _flatten(node)
        return None
    if node.op == "call_function":
        return _map_function(node, root)
    return None


def _map_module(module: nn.Module) -> list[Layer] | None:
    if isinstance(module, nn.Sequential):
        # Models traced as a chain of their children keep nested containers whole.
        layers: list[Layer] = []
        for child in module:
            mapped = _map_module(child)
            if mapped is None:
                return None
            layers += mapped
        return layers
    if isinstance(module, nn.Identity):
        return []
    if isinstance(module, nn.ReLU):
        return [ReLU()]
    if isinstance(module, nn.Dropout):
        return [Dropout(p=module.p)]
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        return [BatchNorm()]
    if isinstance(module, nn.Flatten):
        return [Flatten()] if (module.start_dim, module.end_dim) == (1, -1) else None
    if isinstance(module, nn.Linear):
        return [Linear(out_features=module.out_features, bias=module.bias is not None)]
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        return _adaptive(
            "avg" if isinstance(module, nn.AdaptiveAvgPool2d) else "max", module.output_size
        )
    if isinstance(module, nn.MaxPool2d) and module.dilation in (1, (1, 1)):
        return _pool(MaxPool, module.kernel_size, module.stride, module.padding, module.ceil_mode)
    if (
        isinstance(module, nn.AvgPool2d)
        and module.count_include_pad
        and module.divisor_override is None
    ):
        return _pool(AvgPool, module.kernel_size, module.stride, module.padding, module.ceil_mode)
    if isinstance(module, nn.Conv2d) and _is_plain_conv(module):
        kernel, stride, padding = (
            square(v) for v in (module.kernel_size, module.stride, module.padding)
        )
        if kernel is None or stride is None or padding is None:
            return None
        conv = Conv2d(
            out_channels=module.out_channels,
            kernel_size=kernel,
            stride=stride,
            padding=padding,
            bias=module.bias is not None,
        )
        return [conv]
    return None


def _is_plain_conv(conv: nn.Conv2d) -> bool:
    return conv.groups == 1 and conv.dilation == (1, 1) and conv.padding_mode == "zeros"


def _map_function(node: fx.Node, root: fx.GraphModule) -> list[Layer] | None:
    target = node.target
    if target in (torch.relu, nn.functional.relu, _aten.relu.default):
        return [ReLU()]
    if target in (torch.flatten, _aten.flatten.using_ints):
        return _flatten(node)
    if target in (nn.functional.adaptive_avg_pool2d, _aten.adaptive_avg_pool2d.default):
        return _adaptive("avg", _arg(node, 1, "output_size"))
    if target is nn.functional.adaptive_max_pool2d and not _arg(node, 2, "return_indices", False):
        return _adaptive("max", _arg(node, 1, "output_size"))
    if target in (nn.functional.dropout, _aten.dropout.default):
        p = _arg(node, 1, "p", 0.5)
        return [Dropout(p=p)] if isinstance(p, float) else None
    if target in (nn.functional.linear, _aten.linear.default):
        weight = _arg(node, 1, "weight")
        bias = _arg(node, 2, "bias", None)
        if not isinstance(weight, fx.Node) or weight.op != "get_attr":
            return None
        tensor = operator.attrgetter(str(weight.target))(root)
        return [Linear(out_features=int(tensor.shape[0]), bias=bias is not None)]
    return None


def _arg(node: fx.Node, index: int, name: str, default: object = _MISSING) -> object:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _flatten(node: fx.Node) -> list[Layer] | None:
    # torch.flatten and Tensor.flatten start at dimension 0 unless told otherwise.
    dims = (_arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))
    return [Flatten()] if dims == (1, -1) else None


def _adaptive(mode: Literal["avg", "max"], output_size: object) -> list[Layer] | None:
    size = square(output_size)
    return None if size is None else [AdaptivePool(mode=mode, output_size=size)]


def _pool(
    kind: type[MaxPool | AvgPool],
    kernel_size: object,
    stride: object,
    padding: object,
    ceil_mode: bool = False,
) -> list[Layer] | None:
    kernel, step, pad = square(kernel_size), square(stride), square(padding)
    if kernel is None or step is None or pad is None:
        return None
    return [kind(kernel_size=kernel, stride=step, padding=pad, ceil_mode=ceil_mode)]
