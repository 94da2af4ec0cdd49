"""The build tool that writes (or checks) the CRD files and their reference page.

    python -m inferedge.api.crd [--check] --out crds --out charts/inferedge/crds \
        --docs docs/crd-reference.md

The module keeps this name because the generated files' headers name the command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from inferedge.api.crd_reference import reference_markdown
from inferedge.api.crd_schema import GENERATOR, crd_files


def _outputs(outs: Sequence[Path], docs: Path | None) -> dict[Path, str]:
    files = crd_files()
    wanted = {out / name: text for out in outs for name, text in files.items()}
    if docs is not None:
        wanted[docs] = reference_markdown()
    return wanted


def main(argv: Sequence[str] | None = None, echo: Callable[[str], None] = print) -> int:
    """Write (or with --check, compare) the CRD files and the reference page."""
    parser = argparse.ArgumentParser(
        prog=GENERATOR, description="Generate CRDs and their reference from inferedge.api."
    )
    parser.add_argument(
        "--out", type=Path, action="append", default=[], help="CRD folder (repeatable)"
    )
    parser.add_argument("--docs", type=Path, help="write the Markdown reference here")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file differs"
    )
    args = parser.parse_args(argv)
    if not args.out and args.docs is None:
        parser.error("give --out DIR and/or --docs FILE")
    wanted = _outputs(args.out, args.docs)
    if args.check:
        stale = [
            str(path)
            for path, text in wanted.items()
            if not path.is_file() or path.read_text() != text
        ]
        if stale:
            echo(f"stale generated files: {', '.join(stale)} (regenerate: {GENERATOR} ...)")
            return 1
        echo(f"{len(wanted)} generated files up to date")
        return 0
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    echo(f"wrote {len(wanted)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
