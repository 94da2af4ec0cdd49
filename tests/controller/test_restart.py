"""`inferedge operator` killed mid-Training (SIGKILL) and started again makes no second Job."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.controller.conftest import REPO, Cluster
from tests.controller.kubelet import Kubelet


@contextmanager
def operator_process(
    cluster: Cluster, log: Path, args: Sequence[str] = ("--standalone", "--all-namespaces")
) -> Iterator[subprocess.Popen[bytes]]:
    """`inferedge operator ARGS` in its own process, as a Deployment runs it."""
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "inferedge", "operator", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_killed_mid_training_resumes_without_a_duplicate_job(
    cluster: Cluster, kubelet: Kubelet, store_dir: Path, tmp_path: Path
) -> None:
    kubelet.hold.add("train")
    cluster.apply(cluster.example({"uri": str(store_dir)}))
    log = tmp_path / "operator.log"
    with operator_process(cluster, log) as first:
        cluster.wait_phase("digits", "Training", timeout=60)
        first.kill()  # SIGKILL: no cleanup, no goodbye
        first.wait()
    assert cluster.created("jobs", "-train-") == 1
    posts_before = _job_posts(cluster)
    kubelet.hold.clear()
    with operator_process(cluster, log) as second:
        cluster.wait_ready(timeout=60)
        second.terminate()
        assert second.wait(timeout=15) == 0, log.read_text()[-3000:]
    assert cluster.created("jobs", "-train-") == 1
    # The restarted operator found its Jobs in kopf's index: it did not even try to create one
    # again (a create of an existing name would have been refused, but was never sent).
    assert [p for p in _job_posts(cluster)[len(posts_before) :] if "-train-" in p] == []


def _job_posts(cluster: Cluster) -> list[str]:
    """Names of the Jobs POSTed so far, in order (kmock records every request)."""
    return [
        str((r.data or {}).get("metadata", {}).get("name"))
        for r in list(cluster.emulator._requests)
        if str(r.method.value) == "POST" and r.url.path.endswith("/jobs")
    ]
