"""Measure every segment of a cut torch model at every batch size, and as served.

The measurement itself is `inferedge.dnn.profiling`'s; torch decides where it runs. On a GPU
the device is synchronised around each timed run and peak memory is the CUDA allocator's peak;
on a CPU peak memory is the liveness analysis's estimate of the bytes held at once. The served
pass calls every segment (and a head of the pipeline's spec at every inner cut) through the
server's wrapper (`export.array_fn`), and adds what an exported program's call costs over its
module's, timed once on a probe: exporting every segment would cost seconds per profile.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from inferedge.core.exits import ExitSpecError
from inferedge.core.profile import Segment, ServedTimes
from inferedge.core.progress import ProgressCallback
from inferedge.dnn.energy import EnergySensor
from inferedge.dnn.profiling import (
    SEED,
    CallProbes,
    Sync,
    measure_chain,
    measure_served,
    no_sync,
)
from inferedge.dnn.protocols import ArrayFn, ProfileRequest
from inferedge.dnn.torch.exits import render_head, resolve_layers
from inferedge.dnn.torch.export import array_fn, exported, served_module
from inferedge.dnn.torch.graph import CutGraph


def random_input(
    input_shape: tuple[int, ...], batch_size: int, device: torch.device
) -> torch.Tensor:
    """The same random batch on every call, so profiles are reproducible."""
    generator = torch.Generator().manual_seed(SEED)
    return torch.randn((batch_size, *input_shape), generator=generator).to(device)


def measure_segments(
    graph: CutGraph,
    request: ProfileRequest,
    device: torch.device,
    *,
    model_name: str,
    sensor: EnergySensor | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[Segment, ...]:
    """Measure segments 1..K of `graph` (already on `device`) as `request` asks."""
    parts = [graph.segment(i) for i in range(1, graph.num_cuts + 1)]

    def first_run(i: int, value: torch.Tensor) -> tuple[torch.Tensor, int | None]:
        return _first_run(parts[i - 1], value, device)

    with torch.inference_mode():
        return measure_chain(
            parts,
            graph.cut_points,
            request,
            first_input=lambda batch_size: random_input(request.input_shape, batch_size, device),
            peak_bytes_per_sample=graph.segment_peak_bytes,
            model_name=model_name,
            first_run=first_run,
            sync=_synchronizer(device),
            sensor=sensor,
            progress=progress,
        )


def _first_run(
    part: fx.GraphModule, value: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, int | None]:
    """Run `part` once on a copy of its input: the output feeds the next segment, and a segment
    that writes into its input in place then cannot change what later runs see. Returns the
    output and, on CUDA, the allocator's peak over the run (input copy included)."""
    if device.type != "cuda":
        return part(value.clone()), None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    output = part(value.clone())
    torch.cuda.synchronize(device)
    return output, torch.cuda.max_memory_allocated(device) - base


def _synchronizer(device: torch.device) -> Sync:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return no_sync


def measure_served_pass(graph: CutGraph, request: ProfileRequest) -> ServedTimes:
    """Time `graph` (on the CPU, where servers run their programs) as a server serves it."""
    shapes = [c.shape for c in graph.cut_points]
    segments = [array_fn(graph.segment(i)) for i in range(1, graph.num_cuts + 1)]
    heads: dict[int, ArrayFn] = {}
    if request.head is not None:
        for cut in range(1, graph.num_cuts):
            where = f"exit head at cut {cut}"
            try:
                layers = resolve_layers(request.head, shapes[cut], graph)
                heads[cut] = array_fn(render_head(layers, shapes[cut], request.num_classes, where))
            except ExitSpecError:
                continue  # the spec cannot sit here (the planner will not place it here either)
    first = random_input(request.input_shape, 1, torch.device("cpu")).numpy()
    probe = nn.ReLU()
    probes = CallProbes(
        module=array_fn(probe),
        served=array_fn(served_module(exported(probe, request.input_shape, "call probe"))),
    )
    return measure_served(segments, heads, request, first_input=first, probes=probes)
