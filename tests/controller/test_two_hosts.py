"""One pipeline, two hosts: every spec field that changes behaviour means the same to
`inferedge run` and to the operator's Jobs.

Each row of the table varies one field of a small pipeline. The row runs once with `inferedge
run`'s preparation (its steps as child processes, a local store) and once under the real operator
against the emulated API server, whose Jobs the kubelet stand-in runs for real: the same
`inferedge cluster ...` commands a cluster runs, with the container's args and env. Both hosts
must name the same plan and the same artifact set.

The plan is made with the memory strategy, which depends on the model's structure only: with a
latency strategy, two profiling runs (one per host) may legitimately differ by timing noise.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from kopf.testing import KopfRunner

from inferedge.api.documents import parse_documents
from inferedge.core.progress import ProgressCallback
from inferedge.local.runner import Prepared, prepare
from inferedge.storage import LocalStore
from tests.clitools import RunCli
from tests.controller.cluster import ns_path
from tests.controller.conftest import Cluster
from tests.controller.kubelet import Kubelet
from tests.models import small_resnet

Operator = Callable[[], AbstractContextManager[KopfRunner]]
MODEL = "small_resnet"
SHAPE = [3, 16, 16]
FAST = {"profiling": {"batchSizes": [1], "repeats": 1, "warmup": 0}}
DEVICES: list[dict[str, Any]] = [
    {
        "apiVersion": "inferedge.io/v1alpha1",
        "kind": "DeviceProfile",
        "metadata": {"name": "edge-box"},
        "spec": {"role": "edge", "link": {"bandwidthMbps": 8, "rttMs": 40}, **FAST},
    },
    {
        "apiVersion": "inferedge.io/v1alpha1",
        "kind": "DeviceProfile",
        "metadata": {"name": "cloud-box"},
        "spec": {"role": "cloud", **FAST},
    },
]


class Quiet:
    """A reporter that keeps nothing."""

    def info(self, text: str) -> None:
        pass

    def progress(self, title: str) -> AbstractContextManager[ProgressCallback]:
        return _NoBar()


class _NoBar:
    def __enter__(self) -> ProgressCallback:
        return lambda done, total: None

    def __exit__(self, *exc: object) -> None:
        pass


def _rows(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each row's change to the base spec, by pipeline name."""
    no_weights = {"name": MODEL, "inputShape": SHAPE, "numClasses": 10}
    return {
        "weights": {},
        "trained-backbone": {"model": no_weights},
        "model-uri": {
            "model": {"name": "mine", "uri": files["model"], "inputShape": SHAPE, "numClasses": 10}
        },
        "dataset-uri": {"dataset": {"name": "subset", "uri": files["dataset"]}},
        "threshold": {"inference": {"threshold": 0.5}},
        "target-accuracy": {"inference": {"targetAccuracy": 0.9}},
        "accuracy-drop": {"inference": {"maxAccuracyDrop": 0.05}},
        "exits": {"exits": {"edge": 2, "cloud": 0, "head": {"preset": "minimal"}}},
        "partitioning": {"partitioning": {"strategy": "memory", "memoryFraction": 0.3}},
    }


def _pipeline(name: str, change: dict[str, Any], files: dict[str, str], store: Path) -> dict:
    spec: dict[str, Any] = {
        "model": {
            "name": MODEL,
            "inputShape": SHAPE,
            "numClasses": 10,
            "weightsUri": files["weights"],
        },
        "dataset": {"name": "digits", "backboneTraining": {"epochs": 1}},
        "edge": {"profile": "edge-box"},
        "cloud": {"profile": "cloud-box"},
        "partitioning": {"strategy": "memory", "memoryFraction": 0.5},
        "exits": {"edge": 1, "cloud": 1, "training": {"epochs": 1}},
        "storage": {"uri": str(store)},
    }
    for key, value in change.items():
        spec[key] = {**spec.get(key, {}), **value} if key != "model" else value
    return {
        "apiVersion": "inferedge.io/v1alpha1",
        "kind": "InferencePipeline",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, run_cli_module: RunCli) -> dict[str, str]:
    """Trained weights, a stored model and a stored dataset the rows point at."""
    root = tmp_path_factory.mktemp("two-hosts-files")
    weights = root / "backbone.pt"
    done = run_cli_module(
        "train-backbone", MODEL, "--input-shape", "3,16,16", "--epochs", "1", "-o", str(weights)
    )
    assert done.returncode == 0, done.stderr
    model = root / "mine.pt2"
    module = small_resnet().eval()
    batch = torch.export.Dim("batch", min=1, max=4096)  # evaluation runs batches
    program = torch.export.export(module, (torch.zeros(2, *SHAPE),), dynamic_shapes=({0: batch},))
    torch.export.save(program, model)
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.arange(0, len(digits.target), 2)  # every other image: a different dataset
    images = digits.images[keep][:, None].repeat(3, axis=1).astype(np.float32) / 16.0
    dataset = root / "subset.npz"
    np.savez(dataset, x=images, y=digits.target[keep].astype(np.int64))
    return {"weights": str(weights), "model": str(model), "dataset": str(dataset)}


@pytest.mark.slow
def test_every_spec_field_names_the_same_plan_and_set_on_both_hosts(
    cluster: Cluster,
    store_dir: Path,
    run_operator: Operator,
    files: dict[str, str],
    tmp_path: Path,
) -> None:
    rows = _rows(files)

    def run_locally(name: str) -> Prepared:
        pipeline = _pipeline(name, rows[name], files, tmp_path / "unused")
        docs = parse_documents(yaml.safe_dump_all([*DEVICES, pipeline]), f"{name}.yaml")
        return prepare(docs, docs.pipelines[0], tmp_path / name, Quiet(), name)

    # Both hosts at once: each step is a process, so the two hosts' steps share the cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = {name: pool.submit(run_locally, name) for name in rows}
        cluster.apply(copy.deepcopy(DEVICES))
        cluster.apply([_pipeline(n, c, files, store_dir) for n, c in rows.items()])
        stand_in = Kubelet(cluster.api, lambda: LocalStore(store_dir), speeds={}, execute=True)
        with stand_in, run_operator():
            ready = {name: cluster.wait_ready(name, timeout=900) for name in rows}
        local = {name: future.result() for name, future in running.items()}
    failed = [
        job for job in cluster.api.items(ns_path("jobs")) if job.get("status", {}).get("failed")
    ]
    assert not failed, stand_in.logs[-3:]

    for name, body in ready.items():
        status = body["status"]
        here = local[name]
        assert status["plan"]["hash"] == here.plan.hash, name
        assert status["artifacts"]["uri"] == f"{LocalStore(store_dir).uri}/{here.prefix}", name
        assert status["threshold"] == here.evaluation.calibration.threshold, name

    # What each field changes, the same on both hosts: the plan's decisions, or only the set.
    base = local["weights"]
    plans_differ = {n for n in rows if local[n].plan.hash != base.plan.hash}
    assert plans_differ == {"model-uri", "exits", "partitioning"}
    set_of = {n: local[n].prefix.rsplit("/", 1)[1] for n in rows}
    assert len({set_of[n] for n in rows if n != "threshold"}) == len(rows) - 1
    # A fixed threshold is served from the runtime config: the same set, a different c_thr.
    assert set_of["threshold"] == set_of["weights"]
    assert local["threshold"].evaluation.calibration.threshold == 0.5
