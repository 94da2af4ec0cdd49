"""The CLI's commands; each is a thin wrapper over `inferedge.dnn` or `inferedge.core`."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import click

from inferedge.cli.params import (
    SHAPE,
    AccuracyMap,
    IntList,
    cloud_profile_option,
    edge_profile_option,
    read_profile,
)
from inferedge.cli.views import (
    compare_table,
    cut_table,
    plan_view,
    print_renderable,
    profile_summary,
    progress_bar,
)
from inferedge.core.cost import CostModel
from inferedge.core.errors import InfeasibleError, InferedgeError, describe_validation_error
from inferedge.core.exits import ExitHeadSpec, Preset
from inferedge.core.link import Link
from inferedge.core.plan import MAX_EXITS_PER_PART, Plan, PlanRequest
from inferedge.core.planner import make_plan
from inferedge.core.profile import MeasuredProfile, dump_profile
from inferedge.dnn.frameworks import FRAMEWORKS

MIB = 1024 * 1024
STRATEGIES = ("latency", "memory", "min-latency", "deadline")
exit_count = click.IntRange(0, MAX_EXITS_PER_PART)


framework_option = click.option(
    "--framework",
    type=click.Choice(FRAMEWORKS),
    default="torch",
    show_default=True,
    help="Framework MODEL is written in.",
)


def _default_shape(
    model: str, input_shape: tuple[int, ...] | None, framework: str = "torch"
) -> tuple[int, ...]:
    if input_shape is not None:
        return input_shape
    if framework != "torch":
        # The Keras zoo keeps ImageNet stems at any size, so no single default fits it.
        raise click.BadParameter(
            f"required for {framework} models, e.g. --input-shape 3,32,32",
            param_hint="'--input-shape'",
        )
    from inferedge.dnn.torch.zoo import default_input_shape

    if ":" not in model and not model.endswith(".pt2"):
        return default_input_shape(model)  # a zoo name; unknown ones get a clear error here
    raise click.BadParameter(
        "required for models outside the zoo, e.g. --input-shape 3,32,32",
        param_hint="'--input-shape'",
    )


@click.command()
@click.argument("model")
@click.option("--input-shape", type=SHAPE, help="Per-sample input shape [zoo default: ImageNet].")
@click.option("--num-classes", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--batch-sizes", type=IntList("1,8"), default="1", show_default=True, help="Batch sizes."
)
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--device-name", default="local", show_default=True, help="Device class name.")
@click.option(
    "--emulate-slowdown",
    type=click.FloatRange(min=1.0),
    default=1.0,
    show_default=True,
    help="Multiply measured latencies to emulate a slower device (recorded in the profile).",
)
@click.option(
    "--memory-mib",
    type=click.IntRange(min=1),
    help="Memory the device offers the model [default: what this machine has].",
)
@click.option(
    "--head-preset",
    type=click.Choice(get_args(Preset)),
    default="sdn",
    show_default=True,
    help="Exit head timed as served at every inner cut (plans then use its times, not FLOPs).",
)
@framework_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def profile(
    *,
    model: str,
    input_shape: tuple[int, ...] | None,
    num_classes: int,
    batch_sizes: tuple[int, ...],
    warmup: int,
    repeats: int,
    device_name: str,
    emulate_slowdown: float,
    memory_mib: int | None,
    head_preset: Preset,
    framework: str,
    output: Path,
) -> None:
    """Measure MODEL segment by segment on this machine and write a device profile (JSON).

    MODEL is a zoo name (see `inferedge zoo`), `package.module:callable` returning an
    nn.Module (a keras.Model with --framework tensorflow), or a torch.export `.pt2` (a `.keras`)
    file. Energy is recorded where a real sensor exists (Jetson INA3221, Intel RAPL) and is
    null otherwise. On a CPU a served pass then times single-row requests as the servers run
    them: exported programs, each request after 10 ms idle, and a head of --head-preset at
    every inner cut; plans of single rows use those times.
    """
    from inferedge.core.resources import input_estimate
    from inferedge.dnn.frameworks import get_backend
    from inferedge.dnn.protocols import ProfileRequest
    from inferedge.steps.memory import require

    shape = _default_shape(model, input_shape, framework)
    emulated = memory_mib * MIB if memory_mib else None
    require(
        input_estimate(shape, max(batch_sizes)),
        f"--input-shape {','.join(map(str, shape))} at batch {max(batch_sizes)}",
        emulated,
    )
    request = ProfileRequest(
        model_ref=model,
        num_classes=num_classes,
        input_shape=shape,
        batch_sizes=batch_sizes,
        warmup=warmup,
        repeats=repeats,
        device_name=device_name,
        emulate_slowdown=emulate_slowdown,
        memory_bytes=emulated,
        head=ExitHeadSpec(preset=head_preset),
    )
    with progress_bar(f"profiling {model} on {device_name}") as progress:
        result = get_backend(framework).profile(request, progress)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(dump_profile(result), encoding="utf-8")
    print_renderable(profile_summary(result))
    click.echo(f"wrote {output}")


@click.command()
@click.argument("model")
@click.option("--input-shape", type=SHAPE, help="Per-sample input shape [zoo default: ImageNet].")
@click.option("--num-classes", type=click.IntRange(min=1), default=10, show_default=True)
@framework_option
def cuts(model: str, input_shape: tuple[int, ...] | None, num_classes: int, framework: str) -> None:
    """List MODEL's cut points: places where exactly one tensor crosses, with their costs."""
    from inferedge.dnn.frameworks import get_backend

    shape = _default_shape(model, input_shape, framework)
    points = get_backend(framework).cut_points(model, num_classes, shape)
    print_renderable(cut_table(points, f"{model} [{'x'.join(map(str, shape))}]: cut points"))


@click.command()
@framework_option
def zoo(framework: str) -> None:
    """List the built-in models and their default input shapes."""
    if framework == "tensorflow":
        from inferedge.dnn.frameworks import get_workflow

        get_workflow(framework)  # without TensorFlow: one line saying what to install
        from inferedge.dnn.tensorflow.zoo import ZOO_NAMES as KERAS_NAMES

        for name in KERAS_NAMES:
            click.echo(name)
        click.echo(
            "(Keras models take the --input-shape given; the ImageNet ones need 3 channels and "
            "at least 32x32, inception_v3 75x75: see docs/tensorflow.md)"
        )
        return
    from inferedge.dnn.torch.zoo import ZOO_NAMES, default_input_shape

    for name in ZOO_NAMES:
        imagenet = "x".join(map(str, default_input_shape(name)))
        click.echo(f"{name:<14} {imagenet} (also 3x32x32)")


def _compare(
    edge: MeasuredProfile, cloud: MeasuredProfile, request: PlanRequest
) -> list[tuple[str, str, Plan | str]]:
    rows: list[tuple[str, str, Plan | str]] = []
    for strategy in STRATEGIES:
        if strategy == "deadline" and request.deadline_ms is None:
            continue
        for placement in ("linear", "pareto"):
            variant = request.model_copy(update={"strategy": strategy, "placement": placement})
            try:
                rows.append((strategy, placement, make_plan(edge, cloud, variant)))
            except InfeasibleError as exc:
                rows.append((strategy, placement, str(exc)))
    return rows


def _measured_accuracy(
    path: Path, num_cuts: int, given: dict[int, float]
) -> tuple[dict[int, float], float]:
    """Exit accuracies measured by `evaluate` (test split), overridden by `given` entries."""
    from inferedge.steps.evaluation import load_evaluation

    measured = load_evaluation(path).calibration.exit_accuracy
    final = measured.get(num_cuts)
    if final is None:
        raise click.BadParameter(
            f"{path} evaluates a plan whose final classifier is not cut {num_cuts} of these "
            "profiles",
            param_hint="'--exit-accuracy-from'",
        )
    exits = {cut: acc for cut, acc in measured.items() if cut != num_cuts}
    return {**exits, **given}, final


def _cost_model(path: Path | None) -> CostModel:
    if path is None:
        return CostModel()
    from pydantic import ValidationError

    try:
        return CostModel.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise InferedgeError(describe_validation_error(exc, str(path))) from None


@click.command()
@edge_profile_option
@cloud_profile_option
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default="latency",
    show_default=True,
    help="latency / memory (EdgeLessPart), min-latency (Neurosurgeon), deadline (Edgent).",
)
@click.option(
    "--placement",
    type=click.Choice(["linear", "pareto"]),
    default="linear",
    show_default=True,
    help="Spread exits evenly by cost, or crowd them early (truncated Pareto).",
)
@click.option("--edge-exits", type=exit_count, default=1, show_default=True)
@click.option("--cloud-exits", type=exit_count, default=1, show_default=True)
@click.option("--bandwidth-mbps", type=click.FloatRange(min=0, min_open=True), default=20.0)
@click.option("--rtt-ms", type=click.FloatRange(min=0), default=20.0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--memory-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.7,
    show_default=True,
    help="memory strategy: largest share of the model's memory the edge prefix may need.",
)
@click.option(
    "--deadline-ms",
    type=click.FloatRange(min=0, min_open=True),
    help="deadline strategy: end-to-end latency bound.",
)
@click.option(
    "--exit-accuracy",
    type=AccuracyMap(),
    help="deadline strategy: accuracy estimates per cut, e.g. 5=0.62,12=0.81.",
)
@click.option(
    "--exit-accuracy-from",
    "evaluation_path",
    type=click.Path(exists=True, path_type=Path),
    help="deadline strategy: measured exit accuracies (and the full model's) from an "
    "`inferedge evaluate` report directory; --exit-accuracy entries win over them.",
)
@click.option("--final-accuracy", type=click.FloatRange(0, 1), default=1.0, show_default=True)
@click.option("--pareto-alpha", type=click.FloatRange(min=0, min_open=True), default=1.161)
@click.option(
    "--cost-metric",
    type=click.Choice(["flops", "latency"]),
    default="flops",
    show_default=True,
    help="Axis along which exits are placed.",
)
@click.option(
    "--cost-model",
    "cost_model_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON cost model [default: Google Cloud Functions 1st gen].",
)
@click.option(
    "--compare",
    is_flag=True,
    help="Plan every strategy and placement and print one row each (deadline needs --deadline-ms).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
def plan(
    *,
    edge_path: Path,
    cloud_path: Path,
    strategy: str,
    placement: str,
    edge_exits: int,
    cloud_exits: int,
    bandwidth_mbps: float,
    rtt_ms: float,
    batch_size: int,
    memory_fraction: float,
    deadline_ms: float | None,
    exit_accuracy: dict[int, float] | None,
    evaluation_path: Path | None,
    final_accuracy: float,
    pareto_alpha: float,
    cost_metric: str,
    cost_model_path: Path | None,
    compare: bool,
    as_json: bool,
    output: Path | None,
) -> None:
    """Choose a split point and early exits from an edge and a cloud profile.

    Pure and fast: no model is loaded. See docs/planning.md for the exact definitions.
    """
    if strategy == "deadline" and deadline_ms is None and not compare:
        raise click.BadParameter("required by --strategy deadline", param_hint="'--deadline-ms'")
    edge, cloud = read_profile(edge_path), read_profile(cloud_path)
    if evaluation_path is not None:
        exit_accuracy, final_accuracy = _measured_accuracy(
            evaluation_path, edge.num_cuts, exit_accuracy or {}
        )
    request = PlanRequest(
        strategy=strategy,  # type: ignore[arg-type]
        placement=placement,  # type: ignore[arg-type]
        edge_exits=edge_exits,
        cloud_exits=cloud_exits,
        link=Link(bandwidth_mbps=bandwidth_mbps, rtt_ms=rtt_ms),
        batch_size=batch_size,
        memory_fraction=memory_fraction,
        deadline_ms=deadline_ms,
        exit_accuracy=exit_accuracy,
        final_accuracy=final_accuracy,
        pareto_alpha=pareto_alpha,
        cost_metric=cost_metric,  # type: ignore[arg-type]
        cost_model=_cost_model(cost_model_path),
    )
    if compare:
        print_renderable(compare_table(_compare(edge, cloud, request)))
        return
    result = make_plan(edge, cloud, request)
    text = result.model_dump_json(indent=2) + "\n"
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    if as_json:
        click.echo(text, nl=False)
    else:
        print_renderable(plan_view(result))
