"""The edge's online knob tuner, fed batch records directly: windows, warm-up, the reference,
moves, dvfs and bad configuration. No model, no clock: records carry their own times."""

from __future__ import annotations

import asyncio
import logging

import pytest

from inferedge.core.knobs import SearchSpace, Setting
from inferedge.runtime.edge_batching import BatchRecord
from inferedge.runtime.knob_tuner import OPTIMISERS, KnobTuner, TunerWindow, build_optimiser

SPACE = SearchSpace(cpu_steps=4, gpu_steps=3, max_batch=4, min_batch=1)
TOP = SPACE.max_setting()


class FakeKnobs:
    """Records every setting applied; clock steps are what it reports as kHz."""

    def __init__(self) -> None:
        self.applied: list[Setting] = []

    @property
    def space(self) -> SearchSpace:
        return SPACE

    async def apply(self, setting: Setting) -> None:
        self.applied.append(setting)

    def describe(self, setting: Setting) -> dict[str, float]:
        return {"cpu_khz": setting.cpu_step * 1e5, "gpu_khz": setting.gpu_step * 1e5,
                "batch": float(setting.batch)}  # fmt: skip


class CountingMeter:
    """One joule per batch sample: energy per request is the batch's samples per request."""

    emulated = True

    def __init__(self) -> None:
        self.joules = 0.0
        self.begun = 0

    def begin(self) -> None:
        self.joules = 0.0
        self.begun += 1

    def batch(self, record: BatchRecord, setting: Setting) -> None:
        self.joules += record.size

    def end(self) -> float:
        return self.joules


def record(t: float, requests: int = 1, latency: float = 0.01, gap: float = 0.05) -> BatchRecord:
    """A batch of `requests` one-sample requests that arrived `gap` apart, the last at `t`."""
    arrivals = [t - gap * (requests - 1 - i) for i in range(requests)]
    started = t
    return BatchRecord(
        size=requests, requests=requests, started=started, finished=started + latency,
        waits_s=tuple(started - a for a in arrivals),
        latencies_s=tuple(started + latency - a for a in arrivals), compute_s=latency,
    )  # fmt: skip


async def feed(tuner: KnobTuner, count: int, start: float = 0.0, **kwargs: float) -> float:
    t = start
    for _ in range(count):
        t += 0.05
        tuner.on_batch(record(t, **kwargs))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # let a knob change in flight finish, as the event loop would
    return t


@pytest.mark.asyncio
async def test_the_first_window_at_the_top_gives_the_reference_then_the_optimiser_moves() -> None:
    knobs, meter = FakeKnobs(), CountingMeter()
    seen: list[TunerWindow] = []
    tuner = KnobTuner("ecogd", knobs, meter, window=10, warmup=3, on_window=seen.append)
    await tuner.start()
    assert knobs.applied == [TOP]
    await feed(tuner, 3)  # warm-up: dropped
    assert not seen
    await feed(tuner, 10, start=1.0)
    assert len(seen) == 1
    first = seen[0]
    assert first.setting == TOP
    assert first.cost == pytest.approx(1.0)
    assert first.measurement.requests == 10
    assert first.measurement.latency_s == pytest.approx(0.01)
    assert first.measurement.arrival_interval_s == pytest.approx(0.05)
    assert first.measurement.energy_j_per_request == pytest.approx(1.0)
    assert first.knobs == {"cpu_khz": 3e5, "gpu_khz": 2e5, "batch": 4.0}
    assert first.emulated is True
    assert tuner.reference is not None
    await asyncio.sleep(0)
    # EcoGD scans the batch line first: the next setting is batch 1 at the top clocks
    assert knobs.applied[-1] == Setting(3, 2, 1)
    assert tuner.setting == Setting(3, 2, 1)


@pytest.mark.asyncio
async def test_warm_up_drops_the_first_requests_after_each_move_even_inside_a_batch() -> None:
    knobs, meter = FakeKnobs(), CountingMeter()
    seen: list[TunerWindow] = []
    tuner = KnobTuner("grid", knobs, meter, window=4, warmup=3, on_window=seen.append)
    await tuner.start()
    t = 0.0
    # a batch of 5: 3 dropped, 2 kept; then 2 singles close a 4-request window
    tuner.on_batch(record(t, requests=5, latency=0.5))
    await feed(tuner, 2, start=t)
    assert len(seen) == 1
    # the kept two waited less than the dropped three; the mean latency is theirs and the singles'
    kept = [0.5 + 0.05, 0.5 + 0.0, 0.01, 0.01]
    assert seen[0].measurement.latency_s == pytest.approx(sum(kept) / 4)
    assert seen[0].served_batch == pytest.approx(7 / 3)


@pytest.mark.asyncio
async def test_dvfs_serves_the_largest_batch_and_never_moves() -> None:
    knobs, meter = FakeKnobs(), CountingMeter()
    tuner = KnobTuner("dvfs", knobs, meter, window=5, warmup=0)
    await tuner.start()
    await feed(tuner, 30)
    assert knobs.applied == [TOP]
    assert len(tuner.windows) == 6
    assert all(w.setting == TOP for w in tuner.windows)


@pytest.mark.asyncio
async def test_batches_during_a_knob_change_are_not_counted() -> None:
    knobs, meter = FakeKnobs(), CountingMeter()
    tuner = KnobTuner("ecogd", knobs, meter, window=3, warmup=0)
    await tuner.start()
    for i in range(3):
        tuner.on_batch(record(0.05 * (i + 1)))
    assert len(tuner.windows) == 1  # the move is scheduled, not yet applied
    tuner.on_batch(record(1.0))
    tuner.on_batch(record(1.05))
    await asyncio.sleep(0)
    await feed(tuner, 3, start=2.0)
    assert len(tuner.windows) == 2
    assert tuner.windows[1].measurement.arrival_interval_s == pytest.approx(0.05)


@pytest.mark.asyncio
async def test_an_observer_that_fails_is_logged_and_the_tuning_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(_: TunerWindow) -> None:
        raise RuntimeError("observer\nbroke")

    tuner = KnobTuner("max", FakeKnobs(), CountingMeter(), window=2, warmup=0, on_window=broken)
    await tuner.start()
    with caplog.at_level(logging.WARNING):
        await feed(tuner, 4)
    assert len(tuner.windows) == 2
    assert "on_window failed: RuntimeError: observer" in caplog.text


def test_every_optimiser_name_builds() -> None:
    from inferedge.core.knobs import Reference

    for name in OPTIMISERS:
        optimiser = build_optimiser(name, SPACE, Reference(1.0, 1.0), seed=0)
        assert SPACE.contains(optimiser.next_setting())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"optimiser": "hill"}, "optimiser"), ({"window": 1}, "window"),
     ({"window": True}, "window"), ({"warmup": -1}, "warmup")],
)  # fmt: skip
def test_bad_configuration_names_the_field(kwargs: dict[str, object], field: str) -> None:
    settings: dict[str, object] = {"optimiser": "ecogd", "window": 10, "warmup": 0, **kwargs}
    with pytest.raises(ValueError, match=f"^{field}: "):
        KnobTuner(knobs=FakeKnobs(), meter=CountingMeter(), **settings)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_new_load_measures_the_reference_again_at_the_top() -> None:
    knobs, meter = FakeKnobs(), CountingMeter()
    tuner = KnobTuner("ecogd", knobs, meter, window=5, warmup=0, arrival_change=0.3)
    await tuner.start()
    t = await feed(tuner, 20, gap=0.05)
    assert tuner.load_changes == 0
    assert tuner.setting != TOP  # the search has moved on
    # five times the rate: that window ends the search and goes back to the top
    for _ in range(5):
        t += 0.01
        tuner.on_batch(record(t, gap=0.01))
        await asyncio.sleep(0)
    assert tuner.load_changes == 1
    assert tuner.setting == TOP
    assert knobs.applied[-1] == TOP
    for _ in range(5):  # the next window, at the top, under the new load
        t += 0.01
        tuner.on_batch(record(t, latency=0.03))
        await asyncio.sleep(0)
    assert tuner.windows[-1].setting == TOP
    assert tuner.windows[-1].cost == pytest.approx(1.0)
    assert tuner.reference is not None
    assert tuner.reference.latency_s == pytest.approx(0.03)  # the new load's L0
    assert tuner.load_changes == 1
