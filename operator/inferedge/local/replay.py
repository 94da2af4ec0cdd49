"""Replay a data split through a running edge server, over its Open Inference Protocol API.

Each sample is one `POST /v2/models/<pipeline>/infer`, sent the way a user's client would. The
replay records what came back (prediction, exit, edge or cloud, degraded, the server's timings)
and the client's round trip, and reads the edge's `/metrics` before and after, so bytes shipped
are what the server counted, not an estimate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from inferedge.core.errors import InferedgeError, one_line
from inferedge.dnn.data import Dataset

OFFLOAD_BYTES = "inferedge_activation_bytes_sum"


class ReplayError(InferedgeError):
    """The edge server refused a request or could not be reached."""


@dataclass(frozen=True)
class Served:
    """One sample's answer, as the edge server gave it."""

    label: int
    prediction: int
    confidence: float
    exit_index: int
    location: str
    degraded: bool
    reason: str | None
    server_ms: float
    client_ms: float
    timings: dict[str, float]
    """The server's own breakdown (`Answer.timings`): edge_ms, edge_compute_ms, transfer_ms..."""


@dataclass(frozen=True)
class Replayed:
    """Every answer of one replay, and the bytes the edge offloaded meanwhile."""

    served: tuple[Served, ...]
    offload_bytes: float
    seconds: float


def infer_body(sample: np.ndarray, request_id: str) -> dict[str, Any]:
    """The OIP v2 request body for one sample (C, H, W)."""
    return {
        "id": request_id,
        "inputs": [
            {
                "name": "input",
                "shape": [1, *sample.shape],
                "datatype": "FP32",
                "data": sample.astype(np.float32).ravel().tolist(),
            }
        ],
    }


def parse_answer(body: Any, label: int, client_ms: float) -> Served:
    """One `Served` from an OIP v2 response; ReplayError when the body is not one."""
    try:
        params = body["parameters"]
        outputs = {o["name"]: o["data"] for o in body["outputs"]}
        return Served(
            label=label,
            prediction=int(outputs["prediction"][0]),
            confidence=float(outputs["confidence"][0]),
            exit_index=int(params["exit_index"][0]),
            location=str(params["location"][0]),
            degraded=bool(params["degraded"][0]),
            reason=params["reason"][0],
            server_ms=float(params["timings_ms"][0]["total_ms"]),
            client_ms=client_ms,
            timings={str(k): float(v) for k, v in params["timings_ms"][0].items()},
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ReplayError(f"the edge answered an unexpected body ({one_line(exc)})") from None


async def metric_sum(session: aiohttp.ClientSession, base_url: str, name: str) -> float:
    """The sum of every sample of metric `name` on the server's /metrics page."""
    async with session.get(f"{base_url}/metrics") as response:
        text = await response.text()
    return sum(
        s.value for family in text_string_to_metric_families(text) for s in family.samples
        if s.name == name
    )  # fmt: skip


async def replay(
    base_url: str,
    model: str,
    data: Dataset,
    *,
    concurrency: int = 1,
    timeout_s: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
) -> Replayed:
    """Send every sample of `data` to the edge at `base_url`, `concurrency` at a time."""
    url = f"{base_url}/v2/models/{model}/infer"
    total = len(data)
    served: list[Served | None] = [None] * total
    done = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    client_timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while not queue.empty():
            i = queue.get_nowait()
            body = infer_body(data.x[i], f"replay-{i}")
            sent = time.perf_counter()
            async with session.post(url, json=body) as response:
                answer = await response.json(content_type=None)
                if response.status != 200:
                    error = answer.get("error") if isinstance(answer, dict) else answer
                    raise ReplayError(f"the edge answered {response.status} to sample {i}: {error}")
            client_ms = (time.perf_counter() - sent) * 1000.0
            served[i] = parse_answer(answer, int(data.y[i]), client_ms)
            done += 1
            if progress is not None:
                progress(done, total)

    started = time.perf_counter()
    try:
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            before = await metric_sum(session, base_url, OFFLOAD_BYTES)
            await asyncio.gather(*(worker(session) for _ in range(max(1, concurrency))))
            after = await metric_sum(session, base_url, OFFLOAD_BYTES)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ReplayError(f"cannot reach the edge at {base_url}: {one_line(exc)}") from None
    return Replayed(
        served=tuple(s for s in served if s is not None),
        offload_bytes=after - before,
        seconds=time.perf_counter() - started,
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, 0 for none."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0
