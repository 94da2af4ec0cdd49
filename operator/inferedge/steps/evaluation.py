"""The evaluation step: observe a plan's trained exits, sweep c_thr, choose it, write reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from inferedge.api.inference_spec import InferenceSpec
from inferedge.core.calibration import ConfidenceKind
from inferedge.core.errors import InferedgeError
from inferedge.core.manifest import Calibration
from inferedge.core.plan import Plan
from inferedge.core.profile import MeasuredProfile
from inferedge.core.sweep import (
    DEFAULT_THRESHOLDS,
    Outcome,
    SweepReport,
    choose_or_most_accurate,
    sweep,
)
from inferedge.dnn.data import Splits
from inferedge.dnn.protocols import ExitHandle, Workflow
from inferedge.report.markdown import sweep_markdown
from inferedge.report.plots import plot_sweeps

EVALUATION_FILE = "evaluation.json"


class Evaluation(BaseModel):
    """A plan's sweep on the validation and test splits, and the threshold chosen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    plan: Plan
    objective: str
    target_accuracy: float
    target_missed: str | None = None
    calibration: Calibration
    val: SweepReport
    test: SweepReport

    def with_threshold(self, threshold: float) -> Evaluation:
        """The same evaluation with c_thr fixed by the user rather than chosen."""
        row = next((r for r in self.test.rows if r.threshold == threshold), None)
        if row is None:
            raise InferedgeError(f"threshold {threshold} was not swept")
        calibration = self.calibration.model_copy(
            update={
                "threshold": threshold,
                "accuracy": row.accuracy,
                "expected_latency_ms": row.latency_ms,
                "offload_rate": row.offload_rate,
            }
        )
        return self.model_copy(update={"calibration": calibration, "target_missed": None})

    def chosen(self, split: str = "test") -> Outcome:
        """The operating point at the chosen threshold on `split`."""
        report = self.test if split == "test" else self.val
        return next(r for r in report.rows if r.threshold == self.calibration.threshold)


@dataclass(frozen=True)
class Criteria:
    """How c_thr is chosen."""

    confidence: ConfidenceKind = "max_softmax"
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    target_accuracy: float | None = None
    max_accuracy_drop: float = 0.01
    objective: str = "latency"
    report: tuple[float, ...] = ()
    """More thresholds to sweep for the reports; c_thr is only ever chosen from `thresholds`,
    so what a user asks to see never changes what is calibrated."""

    @classmethod
    def of(cls, inference: InferenceSpec, report: tuple[float, ...] = ()) -> Criteria:
        """The criteria a pipeline's `spec.inference` asks for; its fixed threshold, if any,
        is swept for the reports."""
        fixed = () if inference.threshold is None else (inference.threshold,)
        return cls(
            confidence=inference.confidence,
            target_accuracy=inference.target_accuracy,
            max_accuracy_drop=inference.max_accuracy_drop,
            objective=inference.objective,
            report=tuple(sorted({*report, *fixed})),
        )


def evaluate_plan(
    plan: Plan,
    workflow: Workflow,
    backbone: object,
    exits: Sequence[ExitHandle],
    *,
    profiles: tuple[MeasuredProfile, MeasuredProfile],
    splits: Splits,
    criteria: Criteria,
    label: str | None = None,
) -> Evaluation:
    """Sweep both splits, choose c_thr on validation, and record its test figures.

    `backbone` and `exits` are `workflow`'s own handles (from its `load_backbone` and
    `build_exits` or `load_exits`).
    """
    edge, cloud = profiles
    costs = workflow.head_costs(plan, exits)
    reports = {
        name: sweep(
            plan,
            edge,
            cloud,
            workflow.observe(plan, backbone, exits, data, name),
            costs,
            thresholds=tuple(sorted({*criteria.thresholds, *criteria.report})),
            confidence=criteria.confidence,
        )
        for name, data in (("val", splits.val), ("test", splits.test))
    }
    val, test = reports["val"], reports["test"]
    target = (
        criteria.target_accuracy
        if criteria.target_accuracy is not None
        else val.split_no_exits.accuracy - criteria.max_accuracy_drop
    )
    grid = val.model_copy(
        update={"rows": tuple(r for r in val.rows if r.threshold in criteria.thresholds)}
    )
    on_val, missed = choose_or_most_accurate(grid, target, criteria.objective)
    on_test = next(r for r in test.rows if r.threshold == on_val.threshold)
    calibration = Calibration(
        confidence=criteria.confidence,
        threshold=on_val.threshold or 0.0,
        split=test.split,
        accuracy=on_test.accuracy,
        exit_accuracy=dict(zip(test.exit_cuts, test.exit_accuracy, strict=True)),
        expected_latency_ms=on_test.latency_ms,
        offload_rate=on_test.offload_rate,
    )
    return Evaluation(
        label=label or plan.request.placement,
        plan=plan,
        objective=criteria.objective,
        target_accuracy=target,
        target_missed=missed,
        calibration=calibration,
        val=val,
        test=test,
    )


def write_evaluation(evaluation: Evaluation, report_dir: Path) -> list[Path]:
    """evaluation.json, report.md and the two plots; returns the paths written."""
    report_dir.mkdir(parents=True, exist_ok=True)
    e, name = evaluation, evaluation.label
    data = report_dir / EVALUATION_FILE
    data.write_text(e.model_dump_json(indent=2) + "\n", encoding="utf-8")
    markdown = report_dir / "report.md"
    missed = ", not met" if e.target_missed else ""
    markdown.write_text(
        f"# Threshold sweep: {e.plan.model.name}, {name} placement\n\n"
        f"c_thr chosen on the validation split: {e.calibration.threshold:.2f} "
        f"({e.objective}, target accuracy {e.target_accuracy:.4f}{missed}).\n\n"
        + sweep_markdown(f"{name}: test split", e.test, e.chosen("test"))
        + "\n"
        + sweep_markdown(f"{name}: validation split", e.val, e.chosen("val")),
        encoding="utf-8",
    )
    return [data, markdown, *plot_sweeps([(name, e.test)], report_dir)]


def load_evaluation(path: Path) -> Evaluation:
    """An `evaluate` output (its directory or its evaluation.json), validated."""
    file = path / EVALUATION_FILE if path.is_dir() else path
    if not file.is_file():
        raise InferedgeError(f"{file}: no evaluation found (run `inferedge evaluate` first)")
    try:
        return Evaluation.model_validate_json(file.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise InferedgeError(
            f"{file}: not an inferedge evaluation ({exc.error_count()} "
            "problems; re-run `inferedge evaluate`)"
        ) from None
