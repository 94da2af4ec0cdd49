"""Dockerfiles (parsed: there is no Docker engine here) and the `inferedge` commands that the
images, the chart and the install docs run, which must exist in our CLI with those flags."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from inferedge.cli import cli
from tests.chart.helpers import ROOT, operator_args, render
from tests.chart.test_chart import COMBINATIONS

IMAGES = ROOT / "images"
DOCKERFILES = {d.name: d / "Dockerfile" for d in sorted(IMAGES.iterdir()) if d.is_dir()}
DOCS = [
    ROOT / "docs" / name
    for name in (
        "install.md",
        "quickstart-cluster.md",
        "jetson.md",
        "gitops.md",
        "operations.md",
        "tensorflow.md",
    )
]


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    args: str
    stage: int


def parse(path: Path) -> list[Instruction]:
    """The instructions of a Dockerfile, numbered by build stage (FROM starts one)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out: list[Instruction] = []
    stage = -1
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
    return out


def exec_form(args: str) -> list[str]:
    parsed = json.loads(args)
    assert isinstance(parsed, list), f"use the exec (JSON) form: {args}"
    return [str(a) for a in parsed]


def test_four_images() -> None:
    assert set(DOCKERFILES) == {"operator", "runtime", "runtime-jetson", "runtime-tensorflow"}


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_image_is_multi_stage_non_root_and_runs_inferedge(name: str) -> None:
    instructions = parse(DOCKERFILES[name])
    last = max(i.stage for i in instructions)
    assert last >= 1, "multi-stage: build in one stage, copy the venv into the final one"
    final = [i for i in instructions if i.stage == last]
    assert any(i.keyword == "COPY" and "--from=build" in i.args for i in final)
    users = [i for i in final if i.keyword == "USER"]
    assert users, "the final stage must set USER"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit(), f"USER must be a numeric uid, got {uid}"
    assert int(uid) > 0, "USER must not be root"
    (entrypoint,) = [i for i in final if i.keyword == "ENTRYPOINT"]
    assert exec_form(entrypoint.args) == ["inferedge"]
    assert not any(i.keyword == "USER" and i.args.split(":")[0] in ("0", "root") for i in final)


def test_operator_image_installs_no_torch() -> None:
    instructions = parse(DOCKERFILES["operator"])
    installs = [i.args for i in instructions if i.keyword == "RUN" and "pip install" in i.args]
    assert any('".[operator]"' in line for line in installs), installs
    for line in installs:
        assert not re.search(r"torch|tensorflow|\[[^\]]*(torch|runtime|dev)", line), line


def test_runtime_image_takes_a_cuda_base_and_torch_index() -> None:
    instructions = parse(DOCKERFILES["runtime"])
    args = {i.args.split("=")[0] for i in instructions if i.keyword == "ARG"}
    assert {"BASE_IMAGE", "TORCH_INDEX", "TORCH_VERSION"} <= args
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert all(f.startswith("${BASE_IMAGE}") for f in froms)
    installs = " ".join(i.args for i in instructions if i.keyword == "RUN")
    assert '--index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"' in installs
    assert "cpu" in next(i.args for i in instructions if i.args.startswith("TORCH_INDEX="))


def test_jetson_image_builds_on_l4t_pytorch_for_arm64() -> None:
    instructions = parse(DOCKERFILES["runtime-jetson"])
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert all(f.startswith("--platform=linux/arm64 ${L4T_PYTORCH_IMAGE}") for f in froms)
    default = next(i.args for i in instructions if i.args.startswith("L4T_PYTORCH_IMAGE="))
    assert default.split("=", 1)[1].startswith("nvcr.io/nvidia/")
    installs = " ".join(i.args for i in instructions if i.keyword == "RUN")
    assert "--system-site-packages" in installs, "reuse the base image's Jetson torch"
    assert "torch==" not in installs


@pytest.mark.parametrize("image", ["runtime", "runtime-tensorflow"])
def test_images_that_run_training_jobs_install_the_plot_extra(image: str) -> None:
    # `inferedge cluster train` writes the sweep plots, which need matplotlib.
    installs = " ".join(i.args for i in parse(DOCKERFILES[image]) if i.keyword == "RUN")
    assert '".[runtime,s3,plots]"' in installs


def test_tensorflow_image_installs_pinned_tensorflow_for_each_arch_and_no_torch() -> None:
    instructions = parse(DOCKERFILES["runtime-tensorflow"])
    args = dict(i.args.partition("=")[::2] for i in instructions if i.keyword == "ARG")
    assert args["TENSORFLOW_VERSION"] == _pyproject_tensorflow_pin()
    assert {"BASE_IMAGE", "TARGETARCH", "TENSORFLOW_PACKAGE"} <= set(args)
    installs = " ".join(i.args for i in instructions if i.keyword == "RUN")
    assert '"${TENSORFLOW_PACKAGE:-${default}==${TENSORFLOW_VERSION}}"' in installs
    assert 'default="tensorflow-cpu"' in installs
    assert 'if [ "${TARGETARCH}" = "arm64" ]; then default="tensorflow"; fi' in installs
    assert '".[runtime,s3,plots]"' in installs
    assert "torch" not in installs.replace("find_spec('torch')", "")


def _pyproject_tensorflow_pin() -> str:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (pin,) = project["optional-dependencies"]["tensorflow"]
    return str(pin.split("==")[1])


# --- every `inferedge <command>` we ship must exist ---------------------------------------


def _invocations_in_docs() -> list[tuple[str, list[str]]]:
    """(where, argv after `inferedge`) for each command line in the docs' code."""
    found: list[tuple[str, list[str]]] = []
    for doc in DOCS:
        text = doc.read_text()
        code = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
        code += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
        for block in code:
            joined = block.replace("\\\n", " ")
            for line in joined.splitlines():
                for part in re.split(r"&&|;|\|", line):
                    words = part.strip().removeprefix("$ ").split()
                    if words and words[0] in ("inferedge", ".venv/bin/inferedge"):
                        found.append((doc.name, shlex.split(" ".join(words[1:]))))
    return found


def _invocations_in_images() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for name, path in DOCKERFILES.items():
        for i in parse(path):
            if i.keyword == "CMD":
                found.append((f"{name} CMD", exec_form(i.args)))
            if i.keyword == "RUN":
                for m in re.finditer(r"/opt/inferedge/bin/inferedge ([^&]+)", i.args):
                    found.append((f"{name} RUN", m.group(1).split()))
    return found


def _invocations_in_chart() -> list[tuple[str, list[str]]]:
    return [(f"chart {name}", operator_args(render(v))) for name, v in COMBINATIONS.items()]


def _check(where: str, argv: list[str]) -> list[str]:
    """Problems with `inferedge *argv` against the click command tree."""
    if not argv or argv[0].startswith("-"):
        known = {o for p in cli.params for o in p.opts} | {"-h", "--help"}
        return [
            f"{where}: unknown option {a}" for a in argv if a.startswith("-") and a not in known
        ]
    command = cli.commands.get(argv[0])
    if command is None:
        return [f"{where}: `inferedge {argv[0]}` is not a command of the CLI"]
    options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"-h", "--help"}
    if isinstance(command, click.Group):
        options |= set(command.commands)
    return [
        f"{where}: `inferedge {argv[0]}` has no option {arg.split('=')[0]}"
        for arg in argv[1:]
        if arg.startswith("-") and arg.split("=")[0] not in options
    ]


@pytest.mark.parametrize(
    "source", [_invocations_in_images, _invocations_in_chart, _invocations_in_docs],
    ids=["images", "chart", "docs"],
)  # fmt: skip
def test_every_command_we_run_exists(source: object) -> None:
    assert callable(source)
    invocations = source()
    assert invocations, "expected some `inferedge` command lines"
    problems = [p for where, argv in invocations for p in _check(where, argv)]
    assert not problems, "\n".join(problems)


def test_the_operator_command_starts_without_torch_or_runtime_libraries() -> None:
    # What the operator image lacks: importing any of it would crash `inferedge operator`.
    blocked = ["torch", "tensorflow", "keras", "nats", "aiohttp", "prometheus_client", "matplotlib"]
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {blocked!r}:\n"
        "            raise ImportError(f'{name} is not in the operator image')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from inferedge.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    for argv in (["--version"], ["operator", "--help"]):
        if argv[0] == "operator" and "operator" not in cli.commands:
            pytest.fail("`inferedge operator` is not in the CLI yet (chart and image run it)")
        done = subprocess.run(
            [sys.executable, "-c", code, *argv],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
