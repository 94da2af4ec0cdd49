"""The cloud side of the deployed-path benchmark: a cloud worker in a process of its own.

Deployed, the cloud worker is a pod: a process with its own event loop and its own cores, while
the edge and the broker run on other hosts. On one machine the benchmark keeps the first two of
those facts (the worker runs in a child process, as `inferedge serve` runs it) and, where the
machine has cores to spare, the third: the child may be pinned to cores of its own, with as many
torch threads, so the edge's and the broker's work does not land on the cores whose throughput
is being measured. The plain forward it is compared with runs in the same child, on the same
cores, with the same threads, between the served rounds.

The parent drives the child over a pipe: `plain` measures the plain forward, `serve` starts the
worker on the broker and returns once it is subscribed, `counts` reads its batch counts while it
serves, `stop` stops it. Linux only for pinning (`os.sched_setaffinity`); unpinned anywhere.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchmarks.cloud_batching import NEVER, plain_throughput

from inferedge.core.manifest import Manifest
from inferedge.dnn.torch.export import load_part
from inferedge.dnn.torch.workflow import TorchWorkflow
from inferedge.runtime.dataplane import CloudDataplane
from inferedge.runtime.partition import Partition
from inferedge.runtime.policy import BatchPolicy
from inferedge.runtime.wiring import cloud_worker
from inferedge.transport.client import Messenger


@dataclass(frozen=True)
class CloudSetup:
    """Where the child finds its part and its broker, and the cores it may use."""

    manifest: Manifest
    out: Path
    nats_url: str
    subject: str
    cores: frozenset[int] | None  # None: not pinned, every core the parent may use


@dataclass(frozen=True)
class Serving:
    """How the worker serves, as `inferedge serve cloud` flags would set it."""

    policy: BatchPolicy
    max_in_flight: int = 128
    refuse_when_full: bool = True


def split_cores(cloud_cores: int) -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """(cloud cores, everyone else's cores): the first `cloud_cores` usable cores for the cloud,
    the rest for the edge and the broker. (None, None) where that leaves either side none, or
    where the platform cannot pin."""
    if cloud_cores <= 0 or not hasattr(os, "sched_getaffinity"):
        return None, None
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) <= cloud_cores:
        return None, None
    return frozenset(usable[:cloud_cores]), frozenset(usable[cloud_cores:])


class CloudProcess:
    """The child process; use as a context manager, so it is always stopped."""

    def __init__(self, setup: CloudSetup) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_main, args=(setup, child), daemon=True)
        self.plan_hash = ""

    def __enter__(self) -> CloudProcess:
        self._process.start()
        self.plan_hash = self._reply()
        return self

    def __exit__(self, *_: object) -> None:
        self._conn.send(("exit",))
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()

    def plain(self, x: np.ndarray, batches: int) -> float:
        """Samples/s of the cloud segments called back to back on `x`, in the child."""
        self._conn.send(("plain", x, batches))
        return float(self._reply())

    def serve(self, serving: Serving) -> None:
        """Start the worker; returns once it takes offloads."""
        self._conn.send(("serve", serving))
        self._reply()

    def counts(self) -> dict[str, float]:
        """The serving worker's batch and shed counts so far."""
        self._conn.send(("counts",))
        counts: dict[str, float] = self._reply()
        return counts

    def stop(self) -> dict[str, float]:
        """Stop the worker; its batch and shed counts."""
        self._conn.send(("stop",))
        counts: dict[str, float] = self._reply()
        return counts

    def _reply(self) -> Any:
        if not self._conn.poll(600):
            raise TimeoutError("the cloud process did not answer within 600 s")
        kind, value = self._conn.recv()
        if kind == "error":
            raise RuntimeError(f"cloud process: {value}")
        return value


def _main(setup: CloudSetup, conn: Connection) -> None:
    try:
        if setup.cores is not None:
            os.sched_setaffinity(0, setup.cores)
            torch.set_num_threads(len(setup.cores))
        part = Partition(
            setup.manifest, "cloud", TorchWorkflow().load_part(setup.manifest, "cloud", setup.out)
        )
        modules = [step.segment for step in load_part(setup.manifest, "cloud", setup.out)]
    except Exception as exc:  # the parent reports it; a traceback here would be lost
        conn.send(("error", repr(exc)))
        return
    conn.send(("ok", part.plan_hash))
    while True:
        command = conn.recv()
        if command[0] == "exit":
            return
        try:
            if command[0] == "plain":
                conn.send(("ok", plain_throughput(modules, command[1], command[2])))
            elif command[0] == "serve":
                asyncio.run(_serve(setup, part, command[1], conn))
        except Exception as exc:
            conn.send(("error", repr(exc)))


async def _serve(setup: CloudSetup, part: Partition, serving: Serving, conn: Connection) -> None:
    messenger = await Messenger.connect(setup.nats_url, name="inferedge-cloud")
    cloud = CloudDataplane(part, batch_policy=serving.policy, threshold=NEVER)
    service = await messenger.serve(
        setup.subject, "inferedge-workers", cloud_worker(cloud),
        concurrency=serving.max_in_flight, max_in_flight=serving.max_in_flight,
        refuse_when_full=serving.refuse_when_full,
    )  # fmt: skip
    conn.send(("ok", None))
    value = cloud.metrics.registry.get_sample_value
    while True:
        # Read off the loop, which serves meanwhile.
        command = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        counts = {
            "batches": value("inferedge_batch_size_count") or 0.0,
            "samples": value("inferedge_batch_size_sum") or 0.0,
            **{f"shed_{r}": value("inferedge_shed_total", {"reason": r}) or 0.0
               for r in ("expired", "cloud_busy")},
        }  # fmt: skip
        if command[0] != "counts":
            break
        conn.send(("ok", counts))
    await service.stop()
    await cloud.aclose()
    await messenger.close()
    conn.send(("ok", counts))
