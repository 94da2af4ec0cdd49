"""One inference request answered by an edge: decoded, run through its batcher, encoded.

The edge takes requests two ways, over HTTP from clients (`runtime.http`) and over NATS from a
site's dispatcher (`runtime.pool_member`); both hand the raw body here, so a request means the
same, is refused the same way and is timed the same way whichever way it came.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from inferedge.core.errors import InferedgeError
from inferedge.runtime.compute import ms
from inferedge.runtime.dataplane import EdgeDataplane
from inferedge.runtime.decoding import Decoder
from inferedge.runtime.edge_batching import EdgeBatcher, EdgeBusy
from inferedge.runtime.errors import NotReady, OffloadFailed
from inferedge.runtime.messages import Answer
from inferedge.runtime.oip_codec import InputSpec, Refused, encode_response
from inferedge.runtime.partition import Partition, PartitionError
from inferedge.runtime.step_timings import REQUEST

INPUT_NAME: Final = "input"


class Unavailable(InferedgeError):
    """The edge cannot answer this request now (not loaded, or the cloud failed with no exit
    to fall back on): a 503 that is not the client's fault and not a refusal of the request."""


@dataclass(frozen=True)
class Encoded:
    """An OIP v2 response body; `json_length` is set when it is the binary extension's."""

    payload: bytes
    json_length: int | None


class EdgeInference:
    """Answers raw OIP v2 infer bodies with an edge dataplane, as the model `model_name`."""

    def __init__(
        self,
        edge: EdgeDataplane,
        model_name: str,
        decoder: Decoder,
        batcher: EdgeBatcher | None,
    ) -> None:
        self.edge = edge
        self.model_name = model_name
        self.decoder = decoder
        self.batcher = batcher

    def partition(self) -> Partition:
        """The partition serving now; a 503 before one is loaded."""
        partition = self.edge.partition
        if partition is None:
            raise Refused(503, "not_ready", f"model {self.model_name!r} is not loaded yet")
        return partition

    async def answer(
        self, partition: Partition, body: bytes | bytearray, header: str | None, started: float
    ) -> Encoded:
        """The response to `body` (its Inference-Header-Content-Length is `header`), which
        arrived at `started` (perf_counter); raises Refused (4xx, or 503 when the edge is
        busy) or Unavailable."""
        spec = InputSpec(INPUT_NAME, partition.input_shape)
        decoded = await self.decoder.decode(body, header, spec)
        try:
            answers = await (self.batcher or self.edge).infer(decoded.batch)
        except PartitionError as exc:
            raise Refused(400, "invalid_request", str(exc)) from None
        except EdgeBusy as exc:
            raise Refused(503, "edge_busy", str(exc)) from None
        except (NotReady, OffloadFailed) as exc:
            raise Unavailable(str(exc)) from None
        version = answers[0].plan_hash if answers else partition.plan_hash
        payload, json_length = encode_response(self.model_name, version, answers, decoded.request)
        if len(answers) == 1:
            _record_overhead(partition, answers[0], ms(time.perf_counter() - started))
        return Encoded(payload, json_length)


def _record_overhead(partition: Partition, answer: Answer, handled_ms: float) -> None:
    """Time a single-row request spent in this server outside its model calls and offload:
    what the planner's profile cannot see, and an operating space's map adds per request; and
    the request's whole time but the link's, of which the map measures its paths' tail."""
    t = answer.timings
    outside = t.get("edge_compute_ms", 0.0) + t.get("transfer_ms", 0.0) + t.get("cloud_ms", 0.0)
    partition.timings.record(REQUEST, max(handled_ms - outside, 0.0))
    partition.requests.record(
        partition.point, answer.exit_index, max(handled_ms - t.get("transfer_ms", 0.0), 0.0)
    )
