"""The arguments of each pipeline step, declared once.

`inferedge cluster profile|train|export` run the pipeline's steps; the operator's Jobs and
`inferedge run` both start them. Each step's arguments are one typed value here: the operator
renders it into a Job's args and env, `inferedge run` into a child process's argv, and the CLI
parses it back into the same value (`JobArgs.parse`), so the two lists cannot drift apart.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inferedge.api.device_profile import DeviceProfileSpec
from inferedge.api.model_spec import InputDim
from inferedge.api.pipeline import InferencePipelineSpec
from inferedge.core.errors import InferedgeError
from inferedge.core.exits import ExitHeadSpec
from inferedge.core.zoo import MODEL_NAME, Framework, model_name_error

MIB = 1024 * 1024
SPEC_ENV = "INFEREDGE_PIPELINE_SPEC"


class JobArgsError(InferedgeError):
    """A step's arguments are invalid; the message names the flag and what was expected."""


def _env(name: str) -> dict[str, Any]:
    return {"env": name}


class JobArgs(BaseModel):
    """One step's arguments: flags (`--kebab-case`) and, for bulky values, environment variables.

    Tuples travel as comma-separated values and nested models as JSON, so every value can be
    written into a Job's container and read back unchanged.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: ClassVar[tuple[str, ...]]
    """The `inferedge` subcommand that runs the step."""

    @classmethod
    def flag(cls, field: str) -> str:
        """The command-line flag of `field`."""
        return "--" + field.replace("_", "-")

    @classmethod
    def env_name(cls, field: str) -> str | None:
        """The environment variable `field` travels in, if it is not a flag."""
        extra = cls.model_fields[field].json_schema_extra
        return str(extra["env"]) if isinstance(extra, dict) and "env" in extra else None

    def argv(self) -> list[str]:
        """`inferedge` arguments: the command, then every set flag-borne field (an unset or
        empty value is left to its default)."""
        args = list(self.command)
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None or value == () or self.env_name(name) is not None:
                continue
            args += [self.flag(name), _render(value)]
        return args

    def env(self) -> dict[str, str]:
        """The environment-borne fields, rendered."""
        out = {}
        for name in type(self).model_fields:
            var = self.env_name(name)
            value = getattr(self, name)
            if var is not None and value is not None:
                out[var] = _render(value)
        return out

    @classmethod
    def parse(cls, values: Mapping[str, object]) -> Self:
        """The step's arguments from rendered strings (CLI values by field name), validated;
        `JobArgsError` names the flag or variable and what it expects."""
        try:
            return cls.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            loc = errors[0]["loc"]
            field = str(loc[0]) if loc else ""
            if field in cls.model_fields:
                where = cls.env_name(field) or cls.flag(field)
            else:
                where = " ".join(cls.command)
            inner = "".join(f".{part}" for part in loc[1:])
            more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
            raise JobArgsError(f"{where}{inner}: {errors[0]['msg']}{more}") from None

    @model_validator(mode="before")
    @classmethod
    def _unrender(cls, data: Any) -> Any:
        # The inverse of `_render` for values that arrive as strings from argv or env.
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, info in cls.model_fields.items():
            value = out.get(name)
            if not isinstance(value, str):
                continue
            kind = info.annotation
            if _is_tuple(kind):
                out[name] = tuple(p.strip() for p in value.split(",") if p.strip())
            elif _is_model(kind):
                # Text that is not JSON is left as is: validation then names the field.
                with contextlib.suppress(json.JSONDecodeError):
                    out[name] = json.loads(value)
        return out


def _is_model(kind: object) -> bool:
    """A pydantic model, or an optional one."""
    return any(isinstance(k, type) and issubclass(k, BaseModel) for k in (kind, *get_args(kind)))


def _is_tuple(kind: object) -> bool:
    if get_origin(kind) is tuple:
        return True
    return any(get_origin(a) is tuple for a in get_args(kind))


def _render(value: object) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json(by_alias=True, exclude_none=True)
    if isinstance(value, tuple):
        return ",".join(_render(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


class ProfileJob(JobArgs):
    """Measure the pipeline's model segment by segment on this node; write the profile."""

    command: ClassVar[tuple[str, ...]] = ("cluster", "profile")

    model: str = Field(
        pattern=MODEL_NAME,
        max_length=63,
        description="Zoo name, or the stored model's label; never a path or Python code.",
    )
    model_uri: str | None = Field(
        default=None,
        max_length=2048,
        description="Where the model is stored: a .pt2 (torch) or .keras (tensorflow) file.",
    )
    framework: Framework = Field(default="torch", description="torch or tensorflow.")
    input_shape: tuple[InputDim, ...] = Field(
        min_length=1, max_length=4, description="Per-sample input shape, e.g. 3,32,32."
    )
    num_classes: int | None = Field(default=None, ge=1, le=100000, description="Classes.")
    dataset: str | None = Field(
        default=None, max_length=2048, description="Dataset that decides the classes when unset."
    )
    batch_sizes: tuple[int, ...] = Field(
        default=(1,), min_length=1, max_length=8, description="Batch sizes to measure."
    )
    warmup: int = Field(default=3, ge=0, le=1000, description="Untimed runs before timing.")
    repeats: int = Field(default=20, ge=1, le=10000, description="Timed runs per segment.")
    device_name: str = Field(min_length=1, max_length=253, description="The DeviceProfile's name.")
    emulate_slowdown: float | None = Field(
        default=None, ge=1.0, le=1000.0, description="inferedge run: stretch timings by this."
    )
    memory_mib: int | None = Field(
        default=None, ge=1, le=2**24, description="inferedge run: memory the device offers, MiB."
    )
    head: ExitHeadSpec | None = Field(
        default=None, description="The pipeline's exit head spec, timed at every inner cut."
    )
    store: str = Field(min_length=1, max_length=2048, description="The artifact store.")
    key: str = Field(min_length=1, max_length=1024, description="Store key of the profile.")

    @model_validator(mode="after")
    def _classes(self) -> ProfileJob:
        if self.num_classes is None and self.dataset is None:
            raise ValueError("give num_classes or dataset")
        return self

    @model_validator(mode="after")
    def _data_not_code(self) -> ProfileJob:
        # The same rule as the manifest's: a Job's arguments can be edited too.
        error = model_name_error(self.model, self.framework, self.model_uri)
        if error is not None:
            raise ValueError(error)
        return self

    @classmethod
    def of(
        cls,
        spec: InferencePipelineSpec,
        device_name: str,
        device: DeviceProfileSpec,
        key: str,
        *,
        emulated: bool,
    ) -> ProfileJob:
        """The profiling step of `spec`'s model on one device class; `emulated` applies the
        DeviceProfile's emulation settings (only `inferedge run` does)."""
        model, profiling, emulation = spec.model, device.profiling, device.emulation
        return cls(
            model=model.name,
            model_uri=model.uri,
            framework=model.framework,
            input_shape=model.input_shape,
            num_classes=model.num_classes,
            dataset=None
            if model.num_classes is not None
            else spec.dataset.uri or spec.dataset.name,
            batch_sizes=profiling.batch_sizes,
            warmup=profiling.warmup,
            repeats=profiling.repeats,
            device_name=device_name,
            emulate_slowdown=emulation.slowdown if emulated else None,
            memory_mib=emulation.memory_mib if emulated else None,
            head=spec.exits.head,
            store=spec.storage.uri,
            key=key,
        )


class TrainJob(JobArgs):
    """Train the backbone (unless given) and the plan's exits; evaluate and calibrate c_thr."""

    command: ClassVar[tuple[str, ...]] = ("cluster", "train")

    spec: InferencePipelineSpec = Field(
        json_schema_extra=_env(SPEC_ENV), description="The InferencePipeline spec, as JSON."
    )
    store: str = Field(min_length=1, max_length=2048, description="The artifact store.")
    plan_key: str = Field(min_length=1, max_length=1024, description="Store key of the plan.")
    edge_profile_key: str = Field(min_length=1, max_length=1024, description="Edge profile key.")
    cloud_profile_key: str = Field(min_length=1, max_length=1024, description="Cloud profile key.")
    output_prefix: str = Field(
        min_length=1, max_length=1024, description="Where weights, exits and evaluation go."
    )
    report_thresholds: tuple[Annotated[float, Field(ge=0, le=1)], ...] = Field(
        default=(),
        max_length=32,
        description="Extra c_thr values to report on the test split (never chosen from).",
    )


class ExportJob(JobArgs):
    """Export both partitions with their exits and publish them as one immutable set."""

    command: ClassVar[tuple[str, ...]] = ("cluster", "export")

    store: str = Field(min_length=1, max_length=2048, description="The artifact store.")
    plan_key: str = Field(min_length=1, max_length=1024, description="Store key of the plan.")
    training_prefix: str = Field(
        min_length=1, max_length=1024, description="Where the training step wrote its output."
    )
    namespace: str = Field(min_length=1, max_length=63, description="The pipeline's namespace.")
    pipeline: str = Field(min_length=1, max_length=63, description="The pipeline's name.")
