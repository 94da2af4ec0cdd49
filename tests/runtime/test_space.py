"""Operating spaces at run time: one set's files serve any (split, exits) among its candidates,
on the edge and in the cloud, and the offload names the point so the cloud goes on from there."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from inferedge.core.operating_space import OperatingPoint
from inferedge.core.point_text import point_text
from inferedge.core.space import SPACE_FILE, SpaceError, check_point, route_steps
from inferedge.runtime.cloud import CloudDataplane
from inferedge.runtime.dataplane import EdgeDataplane
from inferedge.runtime.messages import OffloadContext
from inferedge.runtime.partition import Partition, PartitionError
from inferedge.runtime.policy import BatchPolicy
from inferedge.runtime.wiring import _point, cloud_worker, nats_offload
from inferedge.transport import subject
from inferedge.transport.client import Messenger
from inferedge.transport.codec import encode
from inferedge.transport.errors import RemoteError, WireError
from tests.runtime.conftest import Exported
from tests.runtime.helpers import direct_offload

Images = Callable[..., np.ndarray]


@pytest.fixture(scope="module")
def space_edge(exported: Exported) -> Partition:
    return exported.load("space", "edge")


@pytest.fixture(scope="module")
def space_cloud(exported: Exported) -> Partition:
    return exported.load("space", "cloud")


def test_the_manifest_marks_the_set_a_space_with_its_file(space_edge: Partition) -> None:
    manifest = space_edge.manifest
    space = manifest.space
    assert space is not None
    plan = manifest.plan
    assert space.candidates == tuple(range(1, plan.final_cut))
    assert space.stops == tuple(range(plan.final_cut + 1))
    assert space.max_split == plan.split == plan.final_cut  # no memory bound declared
    assert {f.name: f.kind for f in manifest.files}[SPACE_FILE] == "space"


@pytest.mark.parametrize(
    "route", [(0, (), (2, 5)), (3, (1, 3), (4,)), (5, (2,), ()), (7, (1, 4, 7), ())]
)
def test_any_point_gives_the_full_models_answer_past_its_exits(
    exported: Exported,
    space_edge: Partition,
    space_cloud: Partition,
    images: Images,
    route: tuple[int, tuple[int, ...], tuple[int, ...]],
) -> None:
    split, edge_exits, cloud_exits = route
    assert split < space_edge.manifest.plan.final_cut
    point = OperatingPoint(split, edge_exits, tuple(c for c in cloud_exits if c > split), 1.5)
    edge, cloud = space_edge.at(point), space_cloud.at(point)
    assert edge.point == cloud.point == point
    assert [s.step.end for s in edge.steps][-1:] == ([split] if split else [])
    heads = [s.step.end for s in (*edge.steps, *cloud.steps) if s.head is not None]
    assert heads == [*point.edge_exits, *point.cloud_exits]
    x = images(4)
    outcome = edge.run_edge(x, threshold=1.5)
    assert outcome.pending == (0, 1, 2, 3)
    results = cloud.run_cloud(outcome.activation, [1.5] * 4)
    assert [r.prediction for r in results] == exported.predict(x)
    assert {r.exit_index for r in results} == {cloud.final_exit_index}


def test_an_edge_only_point_answers_at_the_edge(
    exported: Exported, space_edge: Partition, images: Images
) -> None:
    k = space_edge.manifest.plan.final_cut
    edge = space_edge.at(OperatingPoint(k, (2,), (), 1.5))
    assert edge.answers_everything
    x = images(3)
    outcome = edge.run_edge(x, threshold=1.5)
    assert outcome.pending == ()
    assert [a.prediction for a in outcome.answers if a] == exported.predict(x)


def test_threshold_zero_answers_at_the_points_first_exit(
    space_edge: Partition, images: Images
) -> None:
    edge = space_edge.at(OperatingPoint(4, (2, 4), (), 0.0))
    outcome = edge.run_edge(images(3), threshold=0.0)
    assert all(a is not None and (a.exit_index, a.cut_index) == (0, 2) for a in outcome.answers)
    assert [e.cut_index for e in edge.exits] == [2, 4]


@pytest.mark.parametrize(
    ("point", "fragment"),
    [
        (OperatingPoint(99, (), (), 0.5), "split 99"),
        (OperatingPoint(3, (4,), (), 0.5), "edge exits [4]"),
        (OperatingPoint(3, (), (2,), 0.5), "cloud exits [2]"),
        (OperatingPoint(6, (1, 2, 3, 4), (), 0.5), "at most 3"),
        (OperatingPoint(6, (3, 1), (), 0.5), "ascending"),
    ],
)
def test_a_point_the_files_cannot_serve_is_refused(
    space_edge: Partition, point: OperatingPoint, fragment: str
) -> None:
    space = space_edge.manifest.space
    assert space is not None
    with pytest.raises(SpaceError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        check_point(space, space_edge.manifest.plan.final_cut, point)
    with pytest.raises(SpaceError):
        route_steps(space_edge.manifest, "edge", point)


def test_a_plan_that_is_not_a_space_has_no_points(edge_part: Partition) -> None:
    with pytest.raises(SpaceError, match="not an operating space"):
        edge_part.at(OperatingPoint(1, (), (), 0.5))


@pytest.mark.asyncio
async def test_the_cloud_goes_on_from_the_split_the_offload_names(
    exported: Exported, space_edge: Partition, space_cloud: Partition, images: Images
) -> None:
    cloud = CloudDataplane(space_cloud, batch_policy=BatchPolicy(), threshold=1.5)
    try:
        x = images(2)
        for split in (2, 5):
            point = OperatingPoint(split, (), (), 1.5)
            edge = EdgeDataplane(
                space_edge.at(point),
                threshold=1.5,
                offload=direct_offload(cloud),
                offload_timeout_s=5.0,
            )
            answers = await edge.infer(x)
            assert [a.prediction for a in answers] == exported.predict(x)
            assert all(a.location == "cloud" for a in answers)
            await edge.aclose()
        activation = space_edge.at(OperatingPoint(2, (), (), 1.5)).run_edge(x, 1.5).activation
        plan = space_cloud.plan_hash
        with pytest.raises(PartitionError, match="must name its operating point"):
            await cloud.handle(activation, plan, 1.5)
        with pytest.raises(PartitionError, match="operating point: split 99"):
            await cloud.handle(activation, plan, 1.5, point=OperatingPoint(99, (), (), 1.5))
        # The activation of another split does not fit the named one's first segment.
        with pytest.raises(PartitionError, match="input shape"):
            await cloud.handle(activation, plan, 1.5, point=OperatingPoint(5, (), (), 1.5))
    finally:
        await cloud.aclose()


@pytest.mark.asyncio
async def test_an_offload_naming_a_point_to_a_plain_plan_is_refused(
    cloud_part: Partition, edge_part: Partition, images: Images
) -> None:
    cloud = CloudDataplane(cloud_part, batch_policy=BatchPolicy(), threshold=1.5)
    try:
        activation = edge_part.run_edge(images(1), 2.0).activation
        with pytest.raises(PartitionError, match="not an operating space"):
            await cloud.handle(
                activation, cloud_part.plan_hash, 1.5, point=OperatingPoint(1, (), (), 1.5)
            )
        # A baseline's point is served only by a cloud that loaded the edge's steps too.
        with pytest.raises(PartitionError, match=r"did not load .*--whole-chain"):
            await cloud.handle(
                images(1), cloud_part.plan_hash, 1.5, point=OperatingPoint(0, (), (), 1.5)
            )
    finally:
        await cloud.aclose()


def test_a_plain_set_serves_its_two_baselines_and_no_other_point(edge_part: Partition) -> None:
    manifest = edge_part.manifest
    k = manifest.plan.final_cut
    assert manifest.space is None
    assert 0 < manifest.plan.split < k
    chain = (*manifest.edge, *manifest.cloud)
    edge_only = route_steps(manifest, "edge", OperatingPoint(k, (), (), 0.5))
    assert [(s.start, s.end) for s in edge_only] == [(s.start, s.end) for s in chain]
    assert all(s.head is None for s in edge_only)
    assert route_steps(manifest, "edge", OperatingPoint(0, (), (), 0.5)) == ()
    cloud_only = route_steps(manifest, "cloud", OperatingPoint(0, (), (), 0.5))
    assert [s.end for s in cloud_only] == [s.end for s in chain]
    for point in (
        OperatingPoint(k, (1,), (), 0.5),
        OperatingPoint(manifest.plan.split, (), (), 0.5),
    ):
        with pytest.raises(SpaceError, match=rf"baselines 0/-/- \(cloud-only\) and {k}/-/-"):
            route_steps(manifest, "edge", point)


@pytest.mark.asyncio
async def test_a_plain_sets_baselines_give_the_full_models_answer(
    exported: Exported, edge_part: Partition, images: Images
) -> None:
    k = edge_part.manifest.plan.final_cut
    with pytest.raises(PartitionError, match="did not load"):
        edge_part.at(OperatingPoint(k, (), (), 1.5))
    whole_edge = exported.load("main", "edge", whole_chain=True)
    # Its own route is still the plan's edge part; only a baseline's view runs beyond it.
    assert [s.step for s in whole_edge.steps] == [s.step for s in edge_part.steps]
    x = images(3)
    edge_only = whole_edge.at(OperatingPoint(k, (), (), 1.5))
    outcome = edge_only.run_edge(x, threshold=0.0)  # no exits to stop at, whatever c_thr
    assert outcome.pending == ()
    assert [a.prediction for a in outcome.answers if a] == exported.predict(x)
    whole_cloud = exported.load("main", "cloud", whole_chain=True)
    cloud = CloudDataplane(whole_cloud, batch_policy=BatchPolicy(), threshold=0.0)
    edge = EdgeDataplane(
        edge_part.at(OperatingPoint(0, (), (), 0.0)),
        threshold=0.0,
        offload=direct_offload(cloud),
        offload_timeout_s=5.0,
    )
    try:
        answers = await edge.infer(x)
        assert [a.prediction for a in answers] == exported.predict(x)
        assert all(a.location == "cloud" for a in answers)
    finally:
        await edge.aclose()
        await cloud.aclose()


def test_the_point_header_round_trips_and_bad_ones_name_the_header() -> None:
    point = OperatingPoint(5, (2, 4), (7,), 0.8)
    assert point_text(point) == "5/2,4/7"
    assert _point({"point": point_text(point)}, 0.8) == point
    assert _point({"point": "0//"}, None) == OperatingPoint(0, (), (), 0.0)
    assert _point({}, 0.5) is None
    for bad in ("5", "a/1/2", "5/1,,2/", "5/1/2/3", "9" * 80 + "//"):
        with pytest.raises(WireError, match="Inferedge-Extra-point: expected 'split/"):
            _point({"point": bad}, 0.5)


OFFLOAD = subject("default", "space", "offload")


@pytest.mark.asyncio
async def test_over_nats_the_point_travels_and_probes_are_answered_at_once(
    messenger: Messenger, exported: Exported, space_edge: Partition, space_cloud: Partition,
    images: Images,
) -> None:  # fmt: skip
    cloud = CloudDataplane(space_cloud, batch_policy=BatchPolicy(8, 2.0), threshold=1.5)
    service = await messenger.serve(OFFLOAD, "inferedge-workers", cloud_worker(cloud))
    offload = nats_offload(messenger, OFFLOAD)
    try:
        edge = EdgeDataplane(
            space_edge.at(OperatingPoint(3, (1,), (5,), 1.5)),
            threshold=1.5,
            offload=offload,
            offload_timeout_s=5.0,
        )
        x = images(3)
        answers = await edge.infer(x)
        assert [a.prediction for a in answers] == exported.predict(x)
        assert not any(a.degraded for a in answers)
        for kind in ("rtt", "bandwidth"):
            context = OffloadContext(
                plan_hash="0" * 16,
                threshold=1.0,
                timeout_s=5.0,
                probe=kind,  # type: ignore[arg-type]
            )
            answer = await offload(np.zeros((1, 512), np.float32), context)
            assert (answer.rows, answer.compute_ms) == ((), 0.0)
            assert answer.plan_hash == space_cloud.plan_hash
        assert cloud.accepted_samples == 0
        await edge.aclose()
    finally:
        await service.stop()
        await cloud.aclose()


@pytest.mark.asyncio
async def test_a_bad_probe_gets_an_error_reply_naming_it(
    messenger: Messenger, space_cloud: Partition
) -> None:
    cloud = CloudDataplane(space_cloud, batch_policy=BatchPolicy(8, 2.0), threshold=1.5)
    service = await messenger.serve(OFFLOAD, "inferedge-workers", cloud_worker(cloud))
    try:
        for extra, size, fragment in (
            ({"probe": "latency"}, 4, "Inferedge-Extra-probe: expected one of rtt, bandwidth"),
            ({"probe": "rtt"}, (1 << 20) + 4, "a link probe carries at most"),
        ):
            headers, payload = encode(
                np.zeros((1, size // 4), np.float32),
                request_id="r",
                plan_hash="0" * 16,
                extra=extra,
            )
            with pytest.raises(RemoteError, match=fragment):
                await messenger.request(OFFLOAD, headers, payload, timeout=5.0)
        assert service.failed == 2
    finally:
        await service.stop()
        await cloud.aclose()
