"""Click parameter types for the CLI: each turns bad input into a one-line message."""

from __future__ import annotations

from typing import Any

import click


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
