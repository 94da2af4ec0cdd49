"""Commands for early exits: train the backbone and its exits, render, evaluate and report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import BaseModel, ValidationError

from inferedge.cli.params import SHAPE, FloatList
from inferedge.cli.views import print_renderable, progress_bar, sweep_table
from inferedge.core.calibration import ConfidenceKind
from inferedge.core.errors import InferedgeError, describe_validation_error
from inferedge.core.exits import ExitHeadSpec
from inferedge.core.plan import Plan, parse_plan
from inferedge.core.profile import parse_profile
from inferedge.core.sweep import DEFAULT_THRESHOLDS
from inferedge.dnn.frameworks import FRAMEWORKS

if TYPE_CHECKING:
    from inferedge.dnn.data import Dataset, Splits
    from inferedge.dnn.protocols import Schedule, Workflow

Model = TypeVar("Model", bound=BaseModel)
EVALUATION_FILE = "evaluation.json"
existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)


def read_model(path: Path, model: type[Model], what: str) -> Model:
    """Read a JSON (or YAML) file into a pydantic model; one-line errors name file and field."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            return model.model_validate(yaml.safe_load(text))
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise InferedgeError(describe_validation_error(exc, f"{what} {path}")) from None
    except Exception as exc:  # yaml's parser errors are many types; all mean "not YAML"
        raise InferedgeError(
            f"{what} {path}: not valid YAML ({str(exc).splitlines()[0]})"
        ) from None


def data_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--dataset and the deterministic split flags every data-using command shares."""
    for option in reversed(
        (
            click.option(
                "--dataset",
                default="digits",
                show_default=True,
                help="'digits' (built in), a .npz with x and y, a folder of class folders, "
                "or s3://bucket/key.npz.",
            ),
            click.option(
                "--val-fraction",
                type=click.FloatRange(0, 0.5, min_open=True),
                default=0.15,
                show_default=True,
            ),
            click.option(
                "--test-fraction",
                type=click.FloatRange(0, 0.5, min_open=True),
                default=0.15,
                show_default=True,
            ),
            click.option(
                "--seed",
                type=int,
                default=0,
                show_default=True,
                help="Seed for the split, initialisation and shuffling.",
            ),
        )
    ):
        func = option(func)
    return func


def schedule_options(epochs: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Training schedule flags."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(
            (
                click.option(
                    "--epochs", type=click.IntRange(min=1), default=epochs, show_default=True
                ),
                click.option(
                    "--batch-size", type=click.IntRange(min=1), default=64, show_default=True
                ),
                click.option(
                    "--lr",
                    type=click.FloatRange(min=0, min_open=True),
                    default=1e-3,
                    show_default=True,
                    help="Adam learning rate.",
                ),
                click.option(
                    "--patience",
                    type=click.IntRange(min=1),
                    default=5,
                    show_default=True,
                    help="Epochs without improvement before stopping.",
                ),
            )
        ):
            func = option(func)
        return func

    return wrap


def _schedule(kw: dict[str, Any]) -> Schedule:
    """The training-schedule flags, as the workflows take them (the seed goes separately)."""
    from inferedge.dnn.protocols import Schedule

    return Schedule(
        epochs=kw["epochs"],
        batch_size=kw["batch_size"],
        learning_rate=kw["lr"],
        patience=kw["patience"],
    )


def _splits(
    dataset: str, shape: tuple[int, ...], num_classes: int | None, kw: dict[str, Any]
) -> tuple[Dataset, Splits]:
    from inferedge.dnn.data import split_dataset
    from inferedge.steps.data import resolve_dataset

    if len(shape) != 3:
        raise click.BadParameter("expected C,H,W", param_hint="'--input-shape'")
    data = resolve_dataset(dataset, (shape[0], shape[1], shape[2]), num_classes)
    return data, split_dataset(data, kw["val_fraction"], kw["test_fraction"], kw["seed"])


@click.command("train-backbone")
@click.argument("model")
@click.option("--input-shape", type=SHAPE, required=True, help="Per-sample shape, e.g. 3,32,32.")
@click.option("--num-classes", type=click.IntRange(min=1), help="[default: from the dataset]")
@click.option("--framework", type=click.Choice(FRAMEWORKS), default="torch", show_default=True)
@data_options
@schedule_options(epochs=15)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Weights file to write (torch: .pt; tensorflow: must end in .weights.h5).",
)
def train_backbone(
    *,
    model: str,
    input_shape: tuple[int, ...],
    num_classes: int | None,
    framework: str,
    dataset: str,
    output: Path,
    **kw: Any,
) -> None:
    """Train MODEL itself on a dataset (zoo models have no pretrained weights here)."""
    from inferedge.dnn.frameworks import get_workflow

    workflow = get_workflow(framework)
    data, splits = _splits(dataset, input_shape, num_classes, kw)
    backbone = workflow.new_backbone(model, data.num_classes, input_shape, kw["seed"])
    with progress_bar(f"training {model} on {data.name}") as progress:
        result = workflow.train_backbone(
            backbone, splits, _schedule(kw), seed=kw["seed"], progress=progress
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    workflow.save_backbone(backbone, output)
    for e in result.history:
        mark = " *" if e.epoch == result.best_epoch else ""
        click.echo(
            f"epoch {e.epoch:>3}  train loss {e.train_loss:.4f}  val loss {e.val_loss:.4f}  "
            f"val acc {e.val_accuracy:.2%}{mark}"
        )
    click.echo(
        f"best epoch {result.best_epoch}: val {result.val_accuracy or 0:.2%}, test "
        f"{result.test_accuracy:.2%} ({result.seconds:.0f} s); wrote {output}"
    )


def _head_spec(head: str, head_spec: Path | None) -> ExitHeadSpec:
    if head_spec is not None:
        return read_model(head_spec, ExitHeadSpec, "exit head spec")
    return ExitHeadSpec(preset=head)  # type: ignore[arg-type]


def plan_and_backbone(plan_path: Path, weights: Path) -> tuple[Plan, Workflow, Any]:
    """The plan, the workflow of its model's framework, and the backbone `weights` hold,
    checked to be the model the plan was made for."""
    from inferedge.dnn.frameworks import get_workflow, weights_framework

    plan = parse_plan(plan_path.read_text(encoding="utf-8"), str(plan_path))
    framework = plan.model.framework
    found = weights_framework(weights)
    if found is not None and found != framework:
        raise click.BadParameter(
            f"{weights} is a {found} weights file, but {plan_path} plans a {framework} model",
            param_hint="'--weights'",
        )
    workflow = get_workflow(framework)
    backbone = workflow.load_backbone(weights)
    workflow.check_plan(plan, backbone, str(plan_path))
    return plan, workflow, backbone


def _plan_splits(dataset: str, plan: Plan, kw: dict[str, Any]) -> Splits:
    return _splits(dataset, plan.model.input_shape, plan.model.num_classes, kw)[1]


head_options = (
    click.option(
        "--head",
        type=click.Choice(["sdn", "minimal", "replicate-classifier"]),
        default="sdn",
        show_default=True,
        help="Preset exit head.",
    ),
    click.option(
        "--head-spec",
        type=existing_file,
        help="JSON/YAML exit head spec ({preset: ...} or {layers: [...]}); wins over --head.",
    ),
)


@click.command("train-exits")
@click.option("--plan", "plan_path", type=existing_file, required=True)
@click.option(
    "--weights",
    type=existing_file,
    required=True,
    help="Trained backbone (torch: .pt, tensorflow: .weights.h5).",
)
@head_options[0]
@head_options[1]
@data_options
@schedule_options(epochs=30)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def train_exits(
    *,
    plan_path: Path,
    weights: Path,
    head: str,
    head_spec: Path | None,
    dataset: str,
    output: Path,
    **kw: Any,
) -> None:
    """Train the plan's exit heads jointly on the frozen backbone."""
    plan, workflow, backbone = plan_and_backbone(plan_path, weights)
    exits = workflow.build_exits(plan, backbone, _head_spec(head, head_spec), kw["seed"])
    if not exits:
        raise InferedgeError(f"{plan_path}: the plan has no exits to train")
    splits = _plan_splits(dataset, plan, kw)
    with progress_bar(f"training {len(exits)} exits") as progress:
        result = workflow.train_exits(
            backbone, exits, splits, _schedule(kw), seed=kw["seed"], progress=progress
        )
    workflow.save_exits(output, plan, exits)
    for e, val, test in zip(exits, result.val_accuracy, result.test_accuracy, strict=True):
        click.echo(f"{e.part:>5} exit at cut {e.cut_index:>3}: val {val:.2%}, test {test:.2%}")
    click.echo(f"best epoch {result.best_epoch} ({result.seconds:.0f} s); wrote {output}")


@click.command("render-exits")
@click.option("--plan", "plan_path", type=existing_file, required=True)
@head_options[0]
@head_options[1]
def render_exits(*, plan_path: Path, head: str, head_spec: Path | None) -> None:
    """Print the PyTorch source of every exit head the plan would get (nothing is executed).

    Torch plans only: a Keras head has no source to print.
    """
    plan = parse_plan(plan_path.read_text(encoding="utf-8"), str(plan_path))
    if plan.model.framework != "torch":
        raise InferedgeError(
            f"{plan_path}: render-exits prints PyTorch source and works on torch plans only; "
            f"this plan is for a {plan.model.framework} model"
        )
    from inferedge.dnn.torch.exits import resolve_layers, torch_source
    from inferedge.dnn.torch.graph import build_cut_graph
    from inferedge.dnn.torch.loader import load_model

    spec = _head_spec(head, head_spec)
    model = plan.model
    loaded = load_model(model.source, model.num_classes, model.input_shape)
    import torch

    graph = build_cut_graph(loaded.module, torch.zeros(1, *model.input_shape), name=model.name)
    for e in plan.exits:
        layers = resolve_layers(spec, e.shape, graph)
        click.echo(f"# {e.part} exit at cut {e.cut_index} ({e.name})")
        click.echo(torch_source(layers, e.shape, model.num_classes, f"ExitAtCut{e.cut_index}"))


@click.command()
@click.option("--plan", "plan_path", type=existing_file, required=True)
@click.option("--edge", "edge_path", type=existing_file, required=True)
@click.option("--cloud", "cloud_path", type=existing_file, required=True)
@click.option(
    "--weights",
    type=existing_file,
    required=True,
    help="Trained backbone (torch: .pt, tensorflow: .weights.h5).",
)
@click.option(
    "--exits", "exits_path", type=existing_file, required=True, help="`train-exits` output."
)
@data_options
@click.option(
    "--confidence",
    type=click.Choice(["max_softmax", "entropy"]),
    default="max_softmax",
    show_default=True,
)
@click.option("--thresholds", type=FloatList(), help="c_thr values [default: 0.30..0.90 by 0.05]")
@click.option(
    "--target-accuracy",
    type=click.FloatRange(0, 1),
    help="Keep accuracy at least this (on the validation split).",
)
@click.option(
    "--max-accuracy-drop",
    type=click.FloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="Keep accuracy within this of the full model (when no --target-accuracy).",
)
@click.option(
    "--objective",
    type=click.Choice(["latency", "cost"]),
    default="latency",
    show_default=True,
    help="What the chosen threshold minimises.",
)
@click.option("--label", help="Name of this plan in reports [default: its placement].")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
def evaluate(
    *,
    plan_path: Path,
    edge_path: Path,
    cloud_path: Path,
    weights: Path,
    exits_path: Path,
    dataset: str,
    confidence: ConfidenceKind,
    thresholds: tuple[float, ...] | None,
    target_accuracy: float | None,
    max_accuracy_drop: float,
    objective: str,
    label: str | None,
    report_dir: Path,
    **kw: Any,
) -> None:
    """Sweep the confidence threshold: accuracy, latency, cost and memory per c_thr.

    Thresholds are chosen on the validation split and reported on the test split, next to
    edge-only, cloud-only, split-without-exits and the oracle. Writes evaluation.json,
    report.md and PNG plots to --report-dir.
    """
    from inferedge.steps.evaluation import Criteria, evaluate_plan, write_evaluation

    plan, workflow, backbone = plan_and_backbone(plan_path, weights)
    edge, cloud = (
        parse_profile(p.read_text(encoding="utf-8"), str(p)) for p in (edge_path, cloud_path)
    )
    exits = workflow.load_exits(exits_path, plan)
    splits = _plan_splits(dataset, plan, kw)
    criteria = Criteria(
        confidence=confidence,
        thresholds=thresholds or DEFAULT_THRESHOLDS,
        target_accuracy=target_accuracy,
        max_accuracy_drop=max_accuracy_drop,
        objective=objective,
    )
    evaluation = evaluate_plan(
        plan,
        workflow,
        backbone,
        exits,
        profiles=(edge, cloud),
        splits=splits,
        criteria=criteria,
        label=label,
    )
    if evaluation.target_missed:
        click.echo(f"warning: {evaluation.target_missed}; using the most accurate one", err=True)
    written = write_evaluation(evaluation, report_dir)
    print_renderable(sweep_table(evaluation.test, evaluation.chosen("test")))
    click.echo(f"wrote {', '.join(str(p) for p in written)}")


@click.command()
@click.argument(
    "evaluations", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True)
def report(*, evaluations: tuple[Path, ...], output: Path) -> None:
    """Compare several evaluations (e.g. linear against pareto placement) in one table and plots."""
    from inferedge.report.markdown import comparison_markdown
    from inferedge.report.plots import plot_sweeps
    from inferedge.steps.evaluation import load_evaluation

    loaded = [load_evaluation(p) for p in evaluations]
    entries = [(e.label, e.test, e.chosen("test")) for e in loaded]
    output.mkdir(parents=True, exist_ok=True)
    table = comparison_markdown(entries)
    (output / "comparison.md").write_text(table)
    plots = plot_sweeps([(label, test) for label, test, _ in entries], output)
    click.echo(table, nl=False)
    click.echo(f"wrote {output / 'comparison.md'}, {', '.join(p.name for p in plots)}")
