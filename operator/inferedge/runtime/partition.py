"""A loaded partition: one part of a plan, run segment by segment with its exits tested in turn.

Rows of a batch leave independently: after each exit the rows confident enough are answered and
only the rest run on, so one hard sample never makes its batch-mates pay for the deep layers.
The thresholds come from the caller, so a live threshold change needs no reload.

The steps are numpy-in, numpy-out callables from the framework's workflow
(`inferedge.dnn.protocols`), so this module serves torch and TensorFlow parts alike.

Emulation: a slowdown above 1 stretches each segment and head call by that factor, holding the
compute thread as a slower device would. Only the model's own calls are stretched, exactly what
the profiler multiplied by the same factor, so the served path and the plan's prediction scale
alike while the serving code's own overhead runs at this machine's speed. The thread is held
busy, not asleep: a slower device computes the whole time, and a core left idle for the stretch
loses its caches and clock, which made the next call measurably slower (1.6 to 2x on
sub-millisecond segments).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from inferedge.core.calibration import ConfidenceKind
from inferedge.core.errors import InferedgeError
from inferedge.core.manifest import (
    Manifest,
    loaded_steps,
)
from inferedge.core.operating_space import OperatingPoint
from inferedge.core.plan import ExitPoint
from inferedge.core.roles import Role
from inferedge.core.space import route_steps
from inferedge.dnn.confidence import softmax_stats
from inferedge.dnn.protocols import ArrayFn, RunnableStep
from inferedge.dnn.slowdown import slowed_call
from inferedge.runtime.policy import Candidate, should_exit
from inferedge.runtime.step_timings import RequestTimes, StepKey, StepTimings

log = logging.getLogger(__name__)

DTYPE: Final = np.float32


class PartitionError(InferedgeError):
    """A partition cannot be loaded or cannot run the input it was given."""


@dataclass(frozen=True)
class RowResult:
    """The answer for one sample: which class, how sure, and which exit gave it."""

    prediction: int
    confidence: float
    exit_index: int
    cut_index: int


@dataclass(frozen=True)
class EdgeOutcome:
    """What the edge part made of a batch.

    `answers[i]` is row i's answer when an edge exit (or an edge-side final classifier) gave
    one, else None; the rows left are `pending`, in order, with their activations at the split
    stacked in `activation` and what every edge exit said about them in `candidates`.
    """

    answers: tuple[RowResult | None, ...]
    pending: tuple[int, ...]
    activation: np.ndarray
    candidates: tuple[tuple[Candidate, ...], ...]
    compute_ms: float = 0.0
    """Milliseconds spent in the model's segments and heads, emulated slowdown included."""


def exit_confidence(logits: np.ndarray, kind: ConfidenceKind) -> tuple[list[float], list[int]]:
    """Per-row confidence in [0, 1] and predicted class of a batch of logits.

    Computed in float64 exactly as calibration observed it (max softmax, or 1 - entropy
    normalised by log(classes)), so a threshold chosen offline means the same thing here.
    """
    top, entropy, prediction = softmax_stats(logits)
    confidence = top if kind == "max_softmax" else 1.0 - entropy
    return confidence.tolist(), prediction.tolist()


def check_slowdown(value: float) -> float:
    """A compute slowdown factor, or PartitionError naming the accepted range."""
    if not np.isfinite(value) or value < 1.0:
        raise PartitionError(f"compute_slowdown must be a finite number >= 1, got {value!r}")
    return float(value)


@dataclass
class _Walk:
    """The state of a batch going through a part's steps."""

    activation: np.ndarray
    rows: list[int]
    answers: list[RowResult | None]
    seen: list[list[Candidate]]
    slowdown: float
    timings: StepTimings | None = None
    compute_s: float = 0.0

    def call(self, fn: ArrayFn, x: np.ndarray, key: StepKey) -> np.ndarray:
        """`fn(x)` on the emulated device; recorded under `key` when the batch is one row."""
        out, seconds = slowed_call(fn, x, self.slowdown)
        self.compute_s += seconds
        if self.timings is not None and x.shape[0] == 1:
            self.timings.record(key, seconds * 1000.0)
        return out


class Partition:
    """One part ('edge' or 'cloud') of an exported plan, loaded and verified, ready to run.

    An operating space's partition holds every file of its side; `at(point)` gives the
    partition of one operating point, sharing those loaded files, so a switch loads nothing.
    `loaded` holds steps loaded besides the part's own (a whole chain, `load_partition`), which
    only `at` uses: a plain set's baselines run beyond its part.
    """

    def __init__(
        self,
        manifest: Manifest,
        part: Role,
        steps: Sequence[RunnableStep],
        prefix: str = "",
        point: OperatingPoint | None = None,
        *,
        loaded: Sequence[RunnableStep] = (),
    ) -> None:
        plan = manifest.plan
        expected = (
            loaded_steps(manifest, part) if point is None else route_steps(manifest, part, point)
        )
        if tuple(s.step for s in steps) != expected:
            raise PartitionError(f"the loaded steps are not the {part} steps of plan {plan.hash}")
        self.manifest = manifest
        self.point = point
        """The operating point served (None: the plan as exported)."""
        self.prefix = prefix
        """The artifact set it was loaded from (empty when built in memory)."""
        self.part: Role = part
        self.steps = tuple(steps)
        self._loaded = tuple(loaded) or self.steps
        self.timings = StepTimings()
        """What each step measured as served (shared by the views of one loaded space)."""
        self.requests = RequestTimes()
        """The latest single-row requests as served (shared alike)."""
        self.kind: ConfidenceKind = (
            manifest.calibration.confidence if manifest.calibration else "max_softmax"
        )
        files = {f.name: f for f in manifest.files}
        if steps:
            self.input_shape = files[steps[0].step.segment].input_shape
            self.output_shape = files[steps[-1].step.segment].output_shape
        else:
            # An empty edge part (a cloud-only plan) forwards the model input untouched.
            self.input_shape = self.output_shape = plan.model.input_shape
        if point is None:
            self._exit_cuts = sorted(e.cut_index for e in plan.exits)
        else:
            self._exit_cuts = [*point.edge_exits, *point.cloud_exits]
        self._exit_index = {cut: i for i, cut in enumerate(self._exit_cuts)}
        self.final_exit_index = len(self._exit_cuts)
        last = steps[-1] if steps else None
        ends_in_logits = last is not None and last.step.final and last.head is None
        if ends_in_logits and self.output_shape != (plan.model.num_classes,):
            raise PartitionError(
                f"plan {plan.hash}: the {part} part ends at the final cut with output "
                f"{self.output_shape}, not {plan.model.num_classes} class scores"
            )

    def at(self, point: OperatingPoint) -> Partition:
        """The partition of `point`, on the files this one loaded; SpaceError when the set is
        not an operating space or cannot serve that point."""
        route = route_steps(self.manifest, self.part, point)
        loaded = {(s.step.start, s.step.end): s for s in self._loaded}
        steps = []
        for step in route:
            found = loaded.get((step.start, step.end))
            if found is None or (step.head is not None and found.head is None):
                raise PartitionError(
                    f"the {self.part} part of plan {self.plan_hash} did not load the files of "
                    f"step {step.start}->{step.end} (a server started with --whole-chain loads "
                    "every step)"
                )
            head = found.head if step.head is not None else None
            steps.append(RunnableStep(step, found.segment, head))
        view = Partition(self.manifest, self.part, steps, self.prefix, point)
        view._loaded = self._loaded
        view.timings = self.timings
        view.requests = self.requests
        return view

    @property
    def exits(self) -> tuple[ExitPoint, ...]:
        """The plan's exits this partition tests, in path order."""
        return tuple(e for e in self.manifest.plan.exits if e.cut_index in self._exit_index)

    def warm_up(self) -> None:
        """Run every step once on a zero sample, so the first request does not pay the
        framework's first-call costs (graph specialisation, allocations)."""
        x = np.zeros((1, *self.input_shape), DTYPE)
        self._walk(x, [2.0], 1.0, record=False)

    @property
    def plan_hash(self) -> str:
        """The hash of the plan this partition belongs to."""
        return self.manifest.plan.hash

    @property
    def answers_everything(self) -> bool:
        """True when this part ends at the final classifier, so no row is left pending."""
        return bool(self.steps) and self.steps[-1].step.final

    def exit_index_of(self, cut_index: int) -> int:
        """The path-order index of the exit at `cut_index` (KeyError if none is there)."""
        return self._exit_index[cut_index]

    def _exit_ids(self, step: RunnableStep) -> tuple[int, int]:
        """(exit index in path order, cut index) of the classifier at the end of `step`."""
        if step.step.final and step.head is None:
            return self.final_exit_index, step.step.end
        return self.exit_index_of(step.step.end), step.step.end

    def exit_cut(self, exit_index: int) -> int:
        """The cut index of the exit at `exit_index` (path order over the whole plan)."""
        if exit_index == self.final_exit_index:
            return self.manifest.plan.final_cut
        return self._exit_cuts[exit_index]

    def batch(self, x: np.ndarray) -> np.ndarray:
        """`x` as a C-contiguous float32 batch of this part's input shape (one sample gains the
        batch axis); PartitionError naming the expected shape otherwise."""
        if x.dtype.kind not in "fiu":
            raise PartitionError(f"input must hold real numbers, got dtype {x.dtype}")
        if x.ndim == len(self.input_shape):
            x = x[np.newaxis]
        if x.ndim != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            shape = ", ".join(map(str, self.input_shape))
            raise PartitionError(f"input shape must be [N, {shape}], got {list(x.shape)}")
        if x.shape[0] < 1:
            raise PartitionError("input holds no sample")
        x = np.ascontiguousarray(x, dtype=DTYPE)
        # torch warns on read-only memory (e.g. a decoded network buffer), so copy that.
        return x if x.flags.writeable else x.copy()

    def run_edge(
        self,
        x: np.ndarray,
        threshold: float,
        *,
        slowdown: float = 1.0,
        answer_at: int | None = None,
    ) -> EdgeOutcome:
        """Run the edge part on a batch, answering each row at the first exit confident enough.

        Rows no exit answered come back as their activations at the split, with every edge
        exit's opinion of them, for the cloud (or for a degraded answer when it fails).
        `slowdown` stretches every model call (see the module docstring). `answer_at` serves
        the model truncated at its k-th edge exit (1-based): no earlier exit is tested, and
        that one answers every row (a lighter version of the model).
        """
        x = self.batch(x)
        walk = self._walk(x, [threshold] * x.shape[0], slowdown, answer_at=answer_at)
        return EdgeOutcome(
            answers=tuple(walk.answers),
            pending=tuple(walk.rows),
            activation=np.ascontiguousarray(walk.activation, dtype=DTYPE)
            if walk.rows
            else np.empty((0, *self.output_shape), DTYPE),
            candidates=tuple(tuple(walk.seen[row]) for row in walk.rows),
            compute_ms=walk.compute_s * 1000.0,
        )

    def run_cloud(
        self, x: np.ndarray, thresholds: Sequence[float], *, slowdown: float = 1.0
    ) -> list[RowResult]:
        """Continue a batch of split activations to an answer per row.

        Each row may stop at a cloud exit when its confidence reaches `thresholds[row]`; the
        rest run on to the final classifier, which always answers. `slowdown` stretches every
        model call (see the module docstring).
        """
        x = self.batch(x)
        if len(thresholds) != x.shape[0]:
            raise PartitionError(f"{x.shape[0]} rows but {len(thresholds)} thresholds")
        if not self.answers_everything:
            raise PartitionError(f"the {self.part} part of plan {self.plan_hash} has no classifier")
        answers = self._walk(x, list(thresholds), slowdown).answers
        return [a for a in answers if a is not None]

    def stage_shape(self, start: int) -> tuple[int, ...]:
        """The activation shape a stage starting at cut `start` takes (one sample)."""
        if start == 0:
            return self.manifest.plan.model.input_shape
        files = {f.name: f for f in self.manifest.files}
        return files[self.stage_steps(start, None)[0].step.segment].input_shape

    def stage_steps(self, start: int, end: int | None) -> tuple[RunnableStep, ...]:
        """This part's steps from cut `start` to cut `end` (None: to the part's end);
        PartitionError unless both are step boundaries with `start` before `end`."""
        begins = [s.step.start for s in self.steps]
        ends = [s.step.end for s in self.steps]
        last = ends[-1] if ends else 0
        stop = last if end is None else end
        if start not in begins or stop not in ends or stop <= start:
            raise PartitionError(
                f"stage {start}:{stop}: the {self.part} part of plan {self.plan_hash} runs steps "
                f"from cuts {begins} to cuts {ends}; a stage starts and ends at those"
            )
        return tuple(s for s in self.steps if start <= s.step.start and s.step.end <= stop)

    def run_stage(
        self, x: np.ndarray, threshold: float, start: int, end: int, *, slowdown: float = 1.0
    ) -> EdgeOutcome:
        """Run this part's steps from cut `start` to cut `end` on a batch of activations at
        `start`, as one stage of a pipeline over boards: each row is answered at the first exit
        in the stage confident enough (at the final classifier, when the stage ends there);
        the rest come back as their activations at `end`, for the next stage."""
        steps = self.stage_steps(start, end)
        shape = self.stage_shape(start)
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape or x.shape[0] < 1:
            dims = ", ".join(map(str, shape))
            raise PartitionError(f"stage input shape must be [N, {dims}], got {list(x.shape)}")
        x = np.ascontiguousarray(x, dtype=DTYPE)
        x = x if x.flags.writeable else x.copy()
        walk = self._walk(x, [threshold] * x.shape[0], slowdown, steps=steps)
        files = {f.name: f for f in self.manifest.files}
        out_shape = files[steps[-1].step.segment].output_shape
        return EdgeOutcome(
            answers=tuple(walk.answers),
            pending=tuple(walk.rows),
            activation=np.ascontiguousarray(walk.activation, dtype=DTYPE)
            if walk.rows
            else np.empty((0, *out_shape), DTYPE),
            candidates=tuple(tuple(walk.seen[row]) for row in walk.rows),
            compute_ms=walk.compute_s * 1000.0,
        )

    def check_truncation(self, answer_at: int) -> None:
        """PartitionError unless this edge part has a k-th exit to answer at (k = `answer_at`)."""
        edge_exits = [e for e in self.exits if e.part == "edge"]
        if self.part != "edge" or not 1 <= answer_at <= len(edge_exits):
            raise PartitionError(
                f"answer at exit {answer_at}: plan {self.plan_hash} has {len(edge_exits)} edge "
                "exits"
            )

    def _walk(
        self,
        x: np.ndarray,
        thresholds: list[float],
        slowdown: float,
        *,
        record: bool = True,
        answer_at: int | None = None,
        steps: Sequence[RunnableStep] | None = None,
    ) -> _Walk:
        n = x.shape[0]
        walk = _Walk(
            activation=x,
            rows=list(range(n)),
            answers=[None] * n,
            seen=[[] for _ in range(n)],
            slowdown=check_slowdown(slowdown),
            timings=self.timings if record else None,
        )
        for loaded in self.steps if steps is None else steps:
            key: StepKey = ("segment", loaded.step.start, loaded.step.end)
            walk.activation = walk.call(loaded.segment, walk.activation, key)
            if loaded.head is not None or loaded.step.final:
                tested = thresholds
                if answer_at is not None and not loaded.step.final:
                    position = self._exit_ids(loaded)[0] + 1
                    if position < answer_at:
                        continue  # the truncated version has no exit before its last
                    tested = [0.0] * len(thresholds)  # its last answers every row
                self._test_exit(loaded, walk, tested)
                if not walk.rows:
                    break
        return walk

    def _test_exit(self, loaded: RunnableStep, walk: _Walk, thresholds: list[float]) -> None:
        end = loaded.step.end
        logits = (
            walk.activation
            if loaded.head is None
            else walk.call(loaded.head, walk.activation, ("head", end, end))
        )
        confidences, predictions = exit_confidence(logits, self.kind)
        exit_index, cut_index = self._exit_ids(loaded)
        keep: list[int] = []
        for position, row in enumerate(walk.rows):
            confidence, prediction = confidences[position], predictions[position]
            if loaded.step.final or should_exit(confidence, thresholds[row]):
                walk.answers[row] = RowResult(prediction, confidence, exit_index, cut_index)
            else:
                walk.seen[row].append(Candidate(exit_index, confidence, prediction))
                keep.append(position)
        if len(keep) < len(walk.rows):
            walk.rows = [walk.rows[k] for k in keep]
            walk.activation = walk.activation[keep]
