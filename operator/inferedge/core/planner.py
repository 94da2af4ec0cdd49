"""The planner: one split point and up to three exits per part, from two device profiles.

Notation (docs/planning.md has the figure): cut points 0..K, cut 0 is the input and cut K the
output; E(k) is the edge time of segments 1..k, C(a, b) the cloud time of segments a+1..b and
T(k) the time to ship the tensor at cut k (zero when nothing is shipped). A split at k runs
segments 1..k on the edge and k+1..F in the cloud, where F = K unless the deadline strategy
truncates the network at an exit F < K. Everything here is O(K), so a thousand cut points plan
in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inferedge.core.errors import InfeasibleError, PlanningError
from inferedge.core.placement import place_exits
from inferedge.core.plan import ExitPoint, ModelRef, PartSummary, Plan, PlanRequest, plan_hash
from inferedge.core.profile import MeasuredProfile
from inferedge.core.roles import Role

MIB = 1024 * 1024


@dataclass(frozen=True)
class Tables:
    """Prefix sums over one pair of profiles at one batch size; index k refers to cut k."""

    num_cuts: int
    batch_size: int
    edge_prefix_ms: tuple[float, ...]
    cloud_prefix_ms: tuple[float, ...]
    transfer_bytes: tuple[int, ...]
    cum_flops: tuple[int, ...]
    cum_param_bytes: tuple[int, ...]
    edge_peak_bytes: tuple[int, ...]  # per segment, index 0 unused
    cloud_peak_bytes: tuple[int, ...]
    edge_energy_mj: tuple[float | None, ...]  # per segment, index 0 unused

    def edge_ms(self, k: int) -> float:
        """E(k): edge time of segments 1..k."""
        return self.edge_prefix_ms[k]

    def cloud_ms(self, a: int, b: int) -> float:
        """C(a, b): cloud time of segments a+1..b."""
        return self.cloud_prefix_ms[b] - self.cloud_prefix_ms[a]


def _prefix(values: list[float]) -> tuple[float, ...]:
    out = [0.0]
    for v in values:
        out.append(out[-1] + v)
    return tuple(out)


def build_tables(edge: MeasuredProfile, cloud: MeasuredProfile, batch_size: int) -> Tables:
    """Check that both profiles describe the same model and tabulate what the strategies need."""
    if edge.model.input_shape != cloud.model.input_shape:
        raise PlanningError(
            f"edge and cloud profiles have different input shapes: "
            f"{list(edge.model.input_shape)} vs {list(cloud.model.input_shape)}"
        )
    edge_cuts = [(c.name, c.shape) for c in edge.cut_points]
    cloud_cuts = [(c.name, c.shape) for c in cloud.cut_points]
    if edge.model.name != cloud.model.name or edge_cuts != cloud_cuts:
        raise PlanningError(
            f"edge and cloud profiles are of different models: {edge.model.name!r} with "
            f"{edge.num_cuts} cuts vs {cloud.model.name!r} with {cloud.num_cuts} cuts"
        )
    edge_meas = [seg.at(batch_size) for seg in edge.segments]
    cloud_meas = [seg.at(batch_size) for seg in cloud.segments]
    return Tables(
        num_cuts=edge.num_cuts,
        batch_size=batch_size,
        edge_prefix_ms=_prefix(edge.request_ms(batch_size)),
        cloud_prefix_ms=_prefix(cloud.request_ms(batch_size)),
        transfer_bytes=tuple(c.activation_bytes * batch_size for c in edge.cut_points),
        cum_flops=tuple(c.cum_flops for c in edge.cut_points),
        cum_param_bytes=tuple(c.cum_param_bytes for c in edge.cut_points),
        edge_peak_bytes=(0, *(m.peak_memory_bytes for m in edge_meas)),
        cloud_peak_bytes=(0, *(m.peak_memory_bytes for m in cloud_meas)),
        edge_energy_mj=(None, *(m.energy_mj for m in edge_meas)),
    )


def split_latency(t: Tables) -> int:
    """EdgeLessPart latency split: the deepest cut whose edge prefix is no slower than the whole
    network in the cloud."""
    budget = t.cloud_ms(0, t.num_cuts)
    feasible = [k for k in range(1, t.num_cuts + 1) if t.edge_ms(k) <= budget]
    if not feasible:
        raise InfeasibleError(
            f"no cut point satisfies strategy latency: the edge needs {t.edge_ms(1):.3g} ms to "
            f"the first cut, the cloud {budget:.3g} ms for the whole model"
        )
    return feasible[-1]


def edge_memory_bytes(t: Tables) -> list[int]:
    """Memory the edge needs to run segments 1..k, for every k: parameters plus peak activations."""
    need, peak = [0], 0
    for k in range(1, t.num_cuts + 1):
        peak = max(peak, t.edge_peak_bytes[k])
        need.append(t.cum_param_bytes[k] + peak)
    return need


def split_memory(t: Tables, fraction: float, device_memory_bytes: int | None) -> int:
    """EdgeLessPart memory split: the deepest cut whose prefix needs at most `fraction` of the
    whole model's memory and fits the edge device."""
    need = edge_memory_bytes(t)
    total = need[t.num_cuts]
    within = [k for k in range(1, t.num_cuts + 1) if need[k] <= fraction * total]
    if not within:
        raise InfeasibleError(
            f"no cut point satisfies memory fraction {fraction:g}: "
            f"smallest prefix needs {need[1] / total:.2f}"
        )
    if device_memory_bytes is None:
        return within[-1]
    fits = [k for k in within if need[k] <= device_memory_bytes]
    if not fits:
        raise InfeasibleError(
            f"no cut point fits the edge device's {device_memory_bytes / MIB:.1f} MiB "
            f"within memory fraction {fraction:g}: smallest prefix needs {need[1] / MIB:.1f} MiB"
        )
    return fits[-1]


def _best_partitions(t: Tables, request: PlanRequest) -> list[tuple[float, int]]:
    """For every end cut F (1..K), the fastest split p in 0..F and its latency.

    latency(p, F) = E(p) + T(p) + C(p, F) for p < F, and E(F) for p = F. With
    g(p) = E(p) + T(p) - C(0, p), the best p < F is a running minimum of g, so this is O(K).
    Ties go to the deeper split (more work on the edge, less cloud cost).
    """
    link = request.link
    best: list[tuple[float, int]] = [(0.0, 0)]
    run_g, run_p = float("inf"), 0
    for end in range(1, t.num_cuts + 1):
        p = end - 1
        g = t.edge_ms(p) + link.transfer_ms(t.transfer_bytes[p]) - t.cloud_prefix_ms[p]
        if g <= run_g:
            run_g, run_p = g, p
        offload = run_g + t.cloud_prefix_ms[end]
        local = t.edge_ms(end)
        best.append((local, end) if local <= offload else (offload, run_p))
    return best


def split_min_latency(t: Tables, request: PlanRequest) -> int:
    """Neurosurgeon: the split (0..K) that minimises edge + transfer + cloud time."""
    return _best_partitions(t, request)[t.num_cuts][1]


def exit_accuracy_estimates(t: Tables, request: PlanRequest, num_classes: int) -> list[float]:
    """Accuracy per cut (index 1..K) for the deadline strategy.

    Given estimates win; other cuts get chance + (final - chance) * FLOPs share, a monotone
    placeholder until the exits are trained and measured.
    """
    given = request.exit_accuracy or {}
    for k in given:
        if not 1 <= k < t.num_cuts:
            raise PlanningError(
                f"exit_accuracy names cut {k}, expected a cut index in 1..{t.num_cuts - 1}"
            )
    chance = 1.0 / num_classes
    final = request.final_accuracy
    total = max(t.cum_flops[t.num_cuts], 1)
    acc = [0.0]
    for k in range(1, t.num_cuts + 1):
        if k == t.num_cuts:
            acc.append(final)
        elif k in given:
            acc.append(given[k])
        else:
            acc.append(chance + max(final - chance, 0.0) * t.cum_flops[k] / total)
    return acc


def choose_deadline(
    t: Tables, request: PlanRequest, num_classes: int
) -> tuple[int, int, float, float]:
    """Edgent, Algorithm 1: for each exit choice the best partition; the most accurate choice
    that meets the deadline. Returns (split, final_cut, accuracy, latency_ms)."""
    deadline = request.deadline_ms
    assert deadline is not None  # guaranteed by PlanRequest's validator
    acc = exit_accuracy_estimates(t, request, num_classes)
    best = _best_partitions(t, request)
    chosen: tuple[float, float, int] | None = None  # (accuracy, -latency, end)
    for end in range(1, t.num_cuts + 1):
        latency = best[end][0]
        if latency <= deadline:
            key = (acc[end], -latency, end)
            if chosen is None or key > chosen:
                chosen = key
    if chosen is None:
        fastest = min(range(1, t.num_cuts + 1), key=lambda e: best[e][0])
        raise InfeasibleError(
            f"no exit choice meets deadline {deadline:g} ms: the fastest, exiting at cut "
            f"{fastest}, takes {best[fastest][0]:.3g} ms"
        )
    accuracy, neg_latency, end = chosen
    return best[end][1], end, accuracy, -neg_latency


def _positions(t: Tables, request: PlanRequest, part: Role, start: int, end: int) -> list[float]:
    """Normalised cost of cuts start..end along one part (index 0 is `start`)."""
    if request.cost_metric == "flops":
        cost = [float(t.cum_flops[k]) for k in range(start, end + 1)]
    elif part == "edge":
        cost = [t.edge_ms(k) for k in range(start, end + 1)]
    else:
        cost = [t.cloud_prefix_ms[k] for k in range(start, end + 1)]
    span = cost[-1] - cost[0]
    if span <= 0.0:  # a part that costs nothing on this axis: fall back to depth
        return [i / max(end - start, 1) for i in range(end - start + 1)]
    return [(c - cost[0]) / span for c in cost]


def _exits_for_part(
    t: Tables, request: PlanRequest, *, part: Role, start: int, end: int, end_is_exit: bool
) -> list[tuple[int, float]]:
    """(cut index, position) of the exits placed in cuts start+1..end (end only if allowed)."""
    n = request.edge_exits if part == "edge" else request.cloud_exits
    if end <= start:
        return []
    pos = _positions(t, request, part, start, end)
    last = end if end_is_exit else end - 1
    admissible = list(range(start + 1, last + 1))
    picked = place_exits(
        n,
        [pos[k - start] for k in admissible],
        end_is_exit=end_is_exit,
        placement=request.placement,
        alpha=request.pareto_alpha,
    )
    return [(admissible[i], pos[admissible[i] - start]) for i in picked]


def part_summary(t: Tables, *, device: str, first: int, last: int, on_edge: bool) -> PartSummary:
    """What segments first..last cost on one side of a split (empty when first > last)."""
    peaks = t.edge_peak_bytes if on_edge else t.cloud_peak_bytes
    peak = max(peaks[first : last + 1], default=0)
    params = t.cum_param_bytes[last] - t.cum_param_bytes[first - 1] if last >= first else 0
    compute = t.edge_ms(last) - t.edge_ms(first - 1) if on_edge else t.cloud_ms(first - 1, last)
    energy: float | None = None
    if on_edge:
        rails = t.edge_energy_mj[first : last + 1]
        if all(e is not None for e in rails):
            energy = sum(e for e in rails if e is not None)
    return PartSummary(
        device=device,
        first_segment=first,
        last_segment=last,
        flops=(t.cum_flops[last] - t.cum_flops[first - 1]) * t.batch_size if last >= first else 0,
        compute_ms=max(compute, 0.0) if last >= first else 0.0,
        param_bytes=params,
        peak_activation_bytes=peak,
        memory_bytes=params + peak,
        energy_mj=energy,
    )


def model_ref(profile: MeasuredProfile) -> ModelRef:
    """The identity of the model a profile measured, as plans record it."""
    return ModelRef(
        name=profile.model.name,
        framework=profile.model.framework,
        source=profile.model.source,
        input_shape=profile.model.input_shape,
        num_classes=profile.model.num_classes,
        num_cuts=profile.num_cuts,
    )


def make_plan(edge: MeasuredProfile, cloud: MeasuredProfile, request: PlanRequest) -> Plan:
    """Plan a split and exits for the model both profiles describe."""
    t = build_tables(edge, cloud, request.batch_size)
    K = t.num_cuts
    final, accuracy = K, None
    if request.strategy == "latency":
        split = split_latency(t)
    elif request.strategy == "memory":
        split = split_memory(t, request.memory_fraction, edge.device.memory_bytes)
    elif request.strategy == "min-latency":
        split = split_min_latency(t, request)
    else:
        split, final, accuracy, _ = choose_deadline(t, request, edge.model.num_classes)

    notes: list[str] = []
    placed_exits: list[tuple[Role, int, float]] = []
    parts: tuple[tuple[Role, int, int, bool], ...] = (
        ("edge", 0, split, split < final),
        ("cloud", split, final, False),
    )
    for part, start, end, end_is_exit in parts:
        placed = _exits_for_part(
            t, request, part=part, start=start, end=end, end_is_exit=end_is_exit
        )
        wanted = request.edge_exits if part == "edge" else request.cloud_exits
        if len(placed) < wanted:
            notes.append(f"{part} part has room for {len(placed)} of the {wanted} exits asked for")
        placed_exits += [(part, cut, position) for cut, position in placed]
    if final < K:
        cut_name = edge.cut_points[final].name
        notes.append(f"deadline truncates the network at cut {final} ({cut_name})")
    return assemble_plan(
        t,
        (edge, cloud),
        request,
        split=split,
        final=final,
        exits=placed_exits,
        notes=notes,
        accuracy=accuracy,
    )


def baseline_plan(
    edge: MeasuredProfile, cloud: MeasuredProfile, request: PlanRequest, *, on_edge: bool
) -> Plan:
    """A baseline's plan, without exits: the whole model on the edge (`on_edge`), or the raw
    input shipped to the cloud; its figures are predicted as any plan's."""
    t = build_tables(edge, cloud, request.batch_size)
    k = t.num_cuts
    where = "edge-only: the whole model on the edge" if on_edge else "cloud-only: raw input"
    return assemble_plan(
        t, (edge, cloud), request, split=k if on_edge else 0, final=k, exits=(), notes=(where,)
    )


def assemble_plan(
    t: Tables,
    profiles: tuple[MeasuredProfile, MeasuredProfile],
    request: PlanRequest,
    *,
    split: int,
    final: int,
    exits: Sequence[tuple[Role, int, float]],
    notes: Sequence[str],
    accuracy: float | None = None,
) -> Plan:
    """The plan of a decided `split`, `final` cut and `exits` (part, cut, position in its
    part): every predicted figure from the tables `t` of the (edge, cloud) `profiles` (each
    exit's and the final latency, the parts, the transfer, the cloud's cost) and the hash.
    The planner's strategies and the operating space's plan both end here."""
    edge, cloud = profiles
    offloads = split < final
    transfer_bytes = t.transfer_bytes[split] if offloads else 0
    transfer = request.link.transfer_ms(transfer_bytes)
    to_cloud = t.edge_ms(split) + transfer
    points = tuple(
        ExitPoint(
            part=part,
            cut_index=cut,
            name=edge.cut_points[cut].name,
            shape=edge.cut_points[cut].shape,
            position=min(max(position, 0.0), 1.0),
            latency_ms=t.edge_ms(cut) if part == "edge" else to_cloud + t.cloud_ms(split, cut),
        )
        for part, cut, position in exits
    )
    edge_part = part_summary(t, device=edge.device.name, first=1, last=split, on_edge=True)
    cloud_part = part_summary(
        t, device=cloud.device.name, first=split + 1, last=final, on_edge=False
    )
    final_latency = to_cloud + t.cloud_ms(split, final) if offloads else t.edge_ms(final)
    all_notes = list(notes)
    cloud_cost = 0.0
    if offloads:
        cost = request.cost_model
        cloud_cost = cost.usd_per_million(cloud_part.compute_ms, cloud_part.memory_bytes)
        largest = cost.tiers[-1].memory_mib * MIB
        if cloud_part.memory_bytes > largest:
            all_notes.append(
                f"cloud part needs {cloud_part.memory_bytes / MIB:.0f} MiB, more than the "
                f"largest {cost.name} tier ({largest // MIB} MiB); its cost is priced at that tier"
            )
    model = model_ref(edge)
    return Plan(
        model=model,
        request=request,
        split=split,
        split_name=edge.cut_points[split].name,
        final_cut=final,
        exits=points,
        transfer_bytes=transfer_bytes,
        transfer_ms=transfer,
        edge=edge_part,
        cloud=cloud_part,
        final_latency_ms=final_latency,
        cloud_usd_per_million=cloud_cost,
        estimated_accuracy=accuracy,
        notes=tuple(all_notes),
        hash=plan_hash(model, split, final, points),
    )
