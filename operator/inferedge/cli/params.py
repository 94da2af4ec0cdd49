"""Click parameter types for the CLI: each turns bad input into a one-line message."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ValidationError

from inferedge.core.errors import InferedgeError, describe_validation_error
from inferedge.core.link_trace import BUILTINS, LinkTrace, parse_trace
from inferedge.core.manifest import parse_set_prefix
from inferedge.core.operating_space import OperatingPoint
from inferedge.core.point_text import parse_point
from inferedge.core.profile import MeasuredProfile, parse_profile

nats_url_option = click.option(
    "--nats-url",
    envvar="INFEREDGE_NATS_URL",
    help="NATS server(s); credentials come from INFEREDGE_NATS_* variables, never flags "
    "[env: INFEREDGE_NATS_URL].",
)
"""A server's broker: the URL from a flag or the environment, credentials never from flags."""

host_option = click.option(
    "--host", default="127.0.0.1", show_default=True, help="HTTP listen address."
)
"""A server's HTTP listen address."""


class IntList(click.ParamType[tuple[int, ...], Any]):
    """Comma-separated positive integers, e.g. an input shape `3,224,224` or batch sizes `1,8`."""

    def __init__(self, example: str) -> None:
        self.example = example
        self.name = f"N[,N...] (e.g. {example})"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        try:
            numbers = tuple(int(p) for p in parts)
        except ValueError:
            numbers = ()
        if not numbers or any(n <= 0 for n in numbers):
            self.fail(
                f"expected comma-separated positive integers like {self.example}, got {value!r}",
                param,
                ctx,
            )
        return numbers


class AccuracyMap(click.ParamType[dict[int, float], Any]):
    """`CUT=ACCURACY[,CUT=ACCURACY...]`: exit-accuracy estimates for the deadline strategy."""

    name = "CUT=ACC[,...]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dict):
            return value
        out: dict[int, float] = {}
        for item in str(value).split(","):
            cut, sep, acc = item.partition("=")
            try:
                index, accuracy = int(cut), float(acc)
            except ValueError:
                index, accuracy = -1, -1.0
            if not sep or index < 1 or not 0.0 <= accuracy <= 1.0:
                self.fail(
                    f"expected CUT=ACCURACY pairs like 5=0.62,12=0.81 (cut >= 1, accuracy in "
                    f"[0, 1]), got {item!r}",
                    param,
                    ctx,
                )
            out[index] = accuracy
        return out


class NamedAccuracy(click.ParamType[dict[str, float], Any]):
    """`NAME=ACCURACY[,NAME=ACCURACY...]`: each model version's measured accuracy."""

    name = "NAME=ACC[,...]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dict):
            return value
        out: dict[str, float] = {}
        for item in str(value).split(","):
            name, sep, acc = item.partition("=")
            try:
                accuracy = float(acc)
            except ValueError:
                accuracy = -1.0
            if not sep or not name or not 0.0 <= accuracy <= 1.0:
                self.fail(
                    f"expected NAME=ACCURACY pairs like resnet18=0.93,mobilenet_v2=0.9 "
                    f"(accuracy in [0, 1]), got {item!r}",
                    param,
                    ctx,
                )
            out[name] = accuracy
        return out


class FloatList(click.ParamType[tuple[float, ...], Any]):
    """Comma-separated numbers in [0, 1], e.g. thresholds `0.5,0.7,0.9`."""

    name = "X[,X...]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(sorted({float(p) for p in str(value).split(",")}))
        except ValueError:
            numbers = ()
        if not numbers or any(not 0.0 <= n <= 1.0 for n in numbers):
            self.fail(f"expected comma-separated numbers in [0, 1] like 0.5,0.8, got {value!r}",
                      param, ctx)  # fmt: skip
        return numbers


SHAPE = IntList("3,224,224")


class FiniteFloat(click.FloatRange):
    """A click.FloatRange that also refuses nan and inf, which pass every range comparison."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"expected a finite number, got {value!r}", param, ctx)
        return number


class SetPrefixType(click.ParamType[str, Any]):
    """An artifact set's prefix, `<namespace>/<pipeline>/<plan-hash>/<set-id>`, normalised."""

    name = "NS/PIPELINE/PLAN/SET"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return str(parse_set_prefix(str(value)))
        except InferedgeError as exc:
            self.fail(str(exc), param, ctx)


class PointType(click.ParamType[OperatingPoint, Any]):
    """A route of an operating space, `split/edge exits/cloud exits` (`12/-/-`)."""

    name = "SPLIT/EDGE/CLOUD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, OperatingPoint):
            return value
        try:
            return parse_point(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Sha256Type(click.ParamType[str, Any]):
    """A sha256 digest: 64 lowercase hex digits."""

    name = "SHA256"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not re.fullmatch(r"[0-9a-f]{64}", str(value)):
            self.fail(f"expected 64 lowercase hex digits, got {str(value)[:80]!r}", param, ctx)
        return str(value)


class LabelType(click.ParamType[str, Any]):
    """A DNS-1123 label (a pool's or a pod's name), used as a NATS subject token."""

    name = "NAME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", str(value)):
            self.fail(
                f"expected a DNS-1123 label (lowercase letters, digits and '-', at most 63), "
                f"got {str(value)[:80]!r}",
                param,
                ctx,
            )
        return str(value)


class CutSpanType(click.ParamType[tuple[int, int], Any]):
    """`START:END`: the cuts a pipeline stage runs from and to."""

    name = "START:END"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        match = re.fullmatch(r"(\d{1,6}):(\d{1,6})", str(value).strip())
        if match is None or int(match[1]) >= int(match[2]):
            self.fail(
                f"expected two cut indices START:END with START < END, got {str(value)[:40]!r}",
                param,
                ctx,
            )
        return int(match[1]), int(match[2])


class SetPinType(click.ParamType[tuple[str, str], Any]):
    """`PREFIX=SHA256`: an artifact set and its manifest's sha256."""

    name = "PREFIX=SHA256"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        prefix, sep, digest = str(value).rpartition("=")
        if not sep:
            self.fail(f"expected PREFIX=SHA256, got {str(value)[:120]!r}", param, ctx)
        return (
            SetPrefixType().convert(prefix, param, ctx),
            Sha256Type().convert(digest, param, ctx),
        )


class SpecJson(click.ParamType[BaseModel, Any]):
    """A custom resource's field as JSON, validated by its model (what the operator's ConfigMap
    carries, spelled as in the resource: camelCase)."""

    def __init__(self, model: type[BaseModel], field: str) -> None:
        self.model, self.field = model, field
        self.name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, self.model):
            return value
        try:
            return self.model.model_validate_json(str(value))
        except ValidationError as exc:
            self.fail(describe_validation_error(exc, self.field), param, ctx)


class LinkTraceFile(click.ParamType[LinkTrace, Any]):
    """A CSV of `t_s,bandwidth_mbps,rtt_ms` rows (core.link_trace), read and checked."""

    name = "CSV"
    max_bytes = 16 * 1024 * 1024

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, LinkTrace):
            return value
        path = Path(str(value))
        try:
            with path.open("rb") as file:
                data = file.read(self.max_bytes + 1)
        except OSError as exc:
            self.fail(f"{path}: cannot read ({exc.strerror})", param, ctx)
        if len(data) > self.max_bytes:
            self.fail(f"{path}: expected at most {self.max_bytes} bytes", param, ctx)
        try:
            return parse_trace(data.decode("utf-8", errors="replace"), str(path))
        except InferedgeError as exc:
            self.fail(str(exc), param, ctx)


class LinkTraceChoice(LinkTraceFile):
    """A built-in trace's name (`step`, `walk`), kept as that name to be made for the run's
    duration, or a trace CSV (`LinkTraceFile`)."""

    name = "step|walk|CSV"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value in BUILTINS:
            return value
        return super().convert(value, param, ctx)


def read_profile(path: Path) -> MeasuredProfile:
    """A device profile JSON file, validated (a bad one names the file and field)."""
    return parse_profile(path.read_text(encoding="utf-8"), str(path))


edge_profile_option = click.option(
    "--edge",
    "edge_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Edge device profile JSON (`inferedge profile`).",
)
cloud_profile_option = click.option(
    "--cloud",
    "cloud_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Cloud device profile JSON of the same model.",
)
