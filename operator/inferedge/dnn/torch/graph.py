"""Cut points of a torch model, and the sub-models between any two of them.

A cut point is a position in the model's graph after which exactly one activation is live, so the
model can be split there by shipping that one tensor. The search is a liveness sweep over an fx
graph in topological order; it needs no per-model knowledge: inside a residual, dense or inception
block the skip tensors are live next to the main path, so no cut lands there. Of two cuts with
only free work between them (no FLOPs, no parameters, same tensor size: `relu(x + skip)` after a
residual sum) only the later is kept.

The graph comes from `torch.fx.symbolic_trace`, from a `torch.export` program as it is, or, for
models fx cannot trace, from the model's top-level children chained one after the other (used only
after checking that the chain reproduces the model's output exactly).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Literal

import torch
from torch import fx, nn
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from inferedge.core.errors import ModelRefError, one_line
from inferedge.core.profile import CutPoint
from inferedge.dnn.cuts import CutSequence, kept_cuts, segment_peaks

Tracing = Literal["fx", "sequential", "export"]


@dataclass(frozen=True)
class _Record:
    """What one node produced when the graph ran on a batch of one."""

    flops: int
    shape: tuple[int, ...] | None  # None when the node's value is not a single tensor
    dtype: str
    nbytes: int
    alloc_bytes: int  # storage the node allocated; views and in-place results allocate none
    aliases: tuple[fx.Node, ...]  # inputs whose storage the node's value shares


class _Recorder(fx.Interpreter):
    """Runs the graph node by node, recording each node's FLOPs, tensor and storage."""

    def __init__(self, module: fx.GraphModule, counter: FlopCounterMode) -> None:
        super().__init__(module)
        self._counter = counter
        self.records: dict[fx.Node, _Record] = {}

    def run_node(self, n: fx.Node) -> Any:
        before = self._counter.get_total_flops()
        value = super().run_node(n)
        # The inputs are still in self.env here, so equal storage pointers really mean aliasing.
        input_storages = {
            _storage_ptr(t): src for src in n.all_input_nodes for t in _tensors(self.env[src])
        }
        aliases: dict[fx.Node, None] = {}
        allocated: dict[int, int] = {}
        for t in _tensors(value):
            ptr = _storage_ptr(t)
            if ptr in input_storages:
                aliases[input_storages[ptr]] = None
            else:
                allocated[ptr] = t.untyped_storage().nbytes()
        single = value if isinstance(value, torch.Tensor) else None
        self.records[n] = _Record(
            flops=self._counter.get_total_flops() - before,
            shape=tuple(single.shape) if single is not None else None,
            dtype=str(single.dtype).removeprefix("torch.") if single is not None else "",
            nbytes=single.numel() * single.element_size() if single is not None else 0,
            alloc_bytes=sum(allocated.values()),
            aliases=tuple(aliases),
        )
        return value


def _tensors(value: object) -> Iterator[torch.Tensor]:
    """The non-empty tensors inside a node's value (which may be a tuple, list or dict)."""
    for leaf in tree_leaves(value):
        if isinstance(leaf, torch.Tensor) and leaf.untyped_storage().nbytes() > 0:
            yield leaf


def _storage_ptr(t: torch.Tensor) -> int:
    return int(t.untyped_storage().data_ptr())


class CutGraph(CutSequence[fx.GraphModule]):
    """A model's fx graph with its cut points; builds head, tail and segment sub-models.

    Sub-models are `torch.fx.GraphModule`s that share the original model's parameters, so
    `tail(k)(head(k)(x))` computes exactly what the model computes.
    """

    def __init__(
        self,
        module: fx.GraphModule,
        tracing: Tracing,
        *,
        cut_points: tuple[CutPoint, ...],
        cuts: tuple[tuple[fx.Node, int], ...],
        activations: frozenset[fx.Node],
        peak_bytes: tuple[int, ...],
    ) -> None:
        super().__init__(cut_points, peak_bytes)
        self.module = module
        self.tracing: Tracing = tracing
        self._cuts = cuts  # (node holding the cut's tensor, position in the node list)
        self._activations = activations
        self._nodes = list(module.graph.nodes)

    def between(self, start: int, end: int) -> fx.GraphModule:
        """The model from cut `start` to cut `end` (0 <= start <= end <= K)."""
        self.check_range(start, end)
        source, first = self._cuts[start]
        target, last = self._cuts[end]
        graph = fx.Graph()
        env = {source: graph.placeholder(source.name)}

        def lookup(node: fx.Node) -> fx.Node:
            # Only constants (parameters and values computed from them alone) are fetched on
            # demand; an activation of this range was copied in order before its first user, and
            # the one from before the range is the source, because nothing else is live at a cut.
            if node not in env:
                env[node] = graph.node_copy(node, lookup)
            return env[node]

        for node in self._nodes[first + 1 : last + 1]:
            if node in self._activations:
                env[node] = graph.node_copy(node, lookup)
        graph.output(lookup(target))
        return fx.GraphModule(self.module, graph, class_name=f"Cuts{start}To{end}")


def build_cut_graph(
    model: nn.Module, example: torch.Tensor, *, name: str, exported: bool = False
) -> CutGraph:
    """Find the cut points of `model`, running it once on `example` (a batch of one).

    `exported` marks a `torch.export` program's module, whose graph is used as it is. Raises
    `ModelRefError` when no graph can be found or the model fails on the example input.
    """
    module, tracing = _graph_module(model, example, name, exported)
    nodes = list(module.graph.nodes)
    inputs = [n for n in nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise ModelRefError(
            f"model {name!r} takes {len(inputs)} inputs; only single-input models can be cut"
        )
    output = _output_value(nodes[-1], name)
    graph = _Liveness(module, _record(module, example, name))
    candidates, running = graph.sweep()
    if not candidates or candidates[-1][0] is not output:
        raise ModelRefError(
            f"model {name!r} must return a single tensor with a leading batch dimension to be cut"
        )
    cuts = kept_cuts(candidates, graph.costs)
    if len(cuts) < 2:
        raise ModelRefError(f"model {name!r} has no layers between its input and its output")
    peaks = segment_peaks(cuts, lambda source: graph.held_bytes([source]), running)
    return CutGraph(
        module,
        tracing,
        cut_points=tuple(graph.cut_point(k, *cut) for k, cut in enumerate(cuts)),
        cuts=tuple(cuts),
        activations=graph.activations,
        peak_bytes=peaks,
    )


def _record(module: fx.GraphModule, example: torch.Tensor, name: str) -> dict[fx.Node, _Record]:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        recorder = _Recorder(module, counter)
        try:
            recorder.run(example)
        except Exception as exc:  # any error of the user's model on this input is a bad reference
            shape = tuple(example.shape[1:])
            raise ModelRefError(
                f"model {name!r} fails on an input of shape {shape}: {one_line(exc)}"
            ) from None
    return recorder.records


def _graph_module(
    model: nn.Module, example: torch.Tensor, name: str, exported: bool
) -> tuple[fx.GraphModule, Tracing]:
    if exported:
        if not isinstance(model, fx.GraphModule):
            raise TypeError(f"an exported model must be a GraphModule, got {type(model).__name__}")
        return model, "export"
    try:
        return fx.symbolic_trace(model), "fx"
    except Exception as exc:  # user code may raise anything when it meets a Proxy
        sequential = _sequential(model, example)
        if sequential is None:
            raise ModelRefError(
                f"cannot find cut points in model {name!r}: fx tracing failed ({one_line(exc)}) "
                "and its top-level children, chained, do not reproduce its output"
            ) from None
        return sequential, "sequential"


def _sequential(model: nn.Module, example: torch.Tensor) -> fx.GraphModule | None:
    """The model's children as a chain, if chaining them reproduces the model's output exactly."""
    children = list(model.named_children())
    if not children:
        return None
    with torch.no_grad():
        try:
            expected = model(example)
            value = example
            for _, child in children:
                value = child(value)
        except Exception:  # a chain that cannot even run is simply not the model
            return None
    if not (
        isinstance(expected, torch.Tensor)
        and isinstance(value, torch.Tensor)
        and torch.equal(value, expected)
    ):
        return None
    graph = fx.Graph()
    node = graph.placeholder("x")
    for child_name, _ in children:
        node = graph.call_module(child_name, (node,))
    graph.output(node)
    return fx.GraphModule(model, graph, class_name=type(model).__name__)


def _output_value(output: fx.Node, name: str) -> fx.Node:
    """The node whose value the model returns; export graphs wrap it in a 1-tuple."""
    value = output.args[0]
    if isinstance(value, tuple | list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, fx.Node):
        raise ModelRefError(f"model {name!r} must return a single tensor to be cut")
    return value


def _activations(nodes: list[fx.Node]) -> frozenset[fx.Node]:
    """Nodes whose value depends on the input; parameters and what is computed from them alone
    are constants, which every sub-model recomputes or shares instead of receiving."""
    found: set[fx.Node] = set()
    for node in nodes:
        if node.op == "placeholder" or (
            node.op != "output" and any(i in found for i in node.all_input_nodes)
        ):
            found.add(node)
    return frozenset(found)


class _Liveness:
    """Liveness, storage and cumulative costs over a graph that ran once (batch of one)."""

    def __init__(self, module: fx.GraphModule, records: dict[fx.Node, _Record]) -> None:
        self.nodes = list(module.graph.nodes)
        self.records = records
        self.activations = _activations(self.nodes)
        index = {node: i for i, node in enumerate(self.nodes)}
        self.last_use = {
            node: max((index[user] for user in node.users), default=-1) for node in self.activations
        }
        self.owners = _storage_owners(self.nodes, self.activations, records)
        self.cum_flops, self.cum_params = _cumulative_costs(
            module, self.nodes, index, self.activations, records
        )

    def sweep(self) -> tuple[list[tuple[fx.Node, int]], list[int]]:
        """Positions after which one batch-of-one tensor alone is live (each value once, at its
        first such position), and the activation memory held while each node runs."""
        live: dict[fx.Node, None] = {}  # insertion-ordered set
        running: list[int] = []
        candidates: list[tuple[fx.Node, int]] = []
        seen: set[fx.Node] = set()
        for pos, node in enumerate(self.nodes[:-1]):
            running.append(self.held_bytes([*live, node]) if node in self.activations else 0)
            if node in self.activations and self.last_use[node] > pos:
                live[node] = None
            for used in node.all_input_nodes:
                if used in live and self.last_use[used] == pos:
                    del live[used]
            if len(live) == 1:
                (value,) = live
                if value not in seen and _is_batch_of_one(self.records[value]):
                    seen.add(value)
                    candidates.append((value, pos))
        return candidates, running

    def held_bytes(self, values: Iterable[fx.Node]) -> int:
        """Bytes of the storage that keeping `values` alive holds (views counted once)."""
        held: set[fx.Node] = set()
        for value in values:
            held |= self.owners[value]
        return sum(self.records[owner].alloc_bytes for owner in held)

    def costs(self, node: fx.Node, pos: int) -> tuple[int, int, int]:
        """Cumulative FLOPs and parameter bytes at `pos`, and the bytes of `node`'s tensor."""
        return self.cum_flops[pos], self.cum_params[pos], self.records[node].nbytes

    def cut_point(self, k: int, node: fx.Node, pos: int) -> CutPoint:
        """Cut point `k`: `node`'s tensor, after position `pos`."""
        record = self.records[node]
        assert record.shape is not None  # sweep() yields tensors only
        return CutPoint(
            index=k,
            name=node.name,
            shape=record.shape[1:],
            dtype=record.dtype,
            activation_bytes=record.nbytes,
            cum_flops=self.cum_flops[pos],
            cum_param_bytes=self.cum_params[pos],
        )


def _is_batch_of_one(record: _Record) -> bool:
    return (
        record.shape is not None
        and len(record.shape) >= 1
        and record.shape[0] == 1
        and all(record.shape)
    )


def _storage_owners(
    nodes: list[fx.Node], activations: frozenset[fx.Node], records: dict[fx.Node, _Record]
) -> dict[fx.Node, frozenset[fx.Node]]:
    """For each activation, the activations that allocated the storage its value keeps alive."""
    owners: dict[fx.Node, frozenset[fx.Node]] = {}
    for node in nodes:
        if node in activations:
            own = {node} if records[node].alloc_bytes else set()
            for alias in records[node].aliases:
                own |= owners.get(alias, frozenset())
            owners[node] = frozenset(own)
    return owners


def _cumulative_costs(
    module: fx.GraphModule,
    nodes: list[fx.Node],
    index: dict[fx.Node, int],
    activations: frozenset[fx.Node],
    records: dict[fx.Node, _Record],
) -> tuple[list[int], list[int]]:
    """FLOPs and parameter bytes from the input up to each position.

    A constant's cost (a parameter's bytes, FLOPs spent on parameters alone) is charged where an
    activation first uses it, not where the graph happens to fetch it: export graphs fetch every
    parameter before the input placeholder.
    """
    charged_at: dict[fx.Node, int] = {}
    for node in reversed(nodes):
        if node in activations:
            charged_at[node] = index[node]
        else:
            uses = [charged_at[user] for user in node.users if user in charged_at]
            if uses:
                charged_at[node] = min(uses)
    flops = [0] * len(nodes)
    params = [0] * len(nodes)
    first_use: dict[int, tuple[int, int]] = {}  # id(parameter) -> (position, bytes)
    for node, pos in charged_at.items():
        flops[pos] += records[node].flops
        for param in _parameters(module, node):
            seen = first_use.get(id(param))
            if seen is None or pos < seen[0]:
                first_use[id(param)] = (pos, param.numel() * param.element_size())
    for pos, nbytes in first_use.values():
        params[pos] += nbytes
    return list(accumulate(flops)), list(accumulate(params))


def _parameters(module: fx.GraphModule, node: fx.Node) -> list[nn.Parameter]:
    if node.op == "call_module":
        return list(module.get_submodule(str(node.target)).parameters())
    if node.op == "get_attr":
        value: object = module
        for part in str(node.target).split("."):
            value = getattr(value, part)
        return [value] if isinstance(value, nn.Parameter) else []
    return []
