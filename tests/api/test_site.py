"""The site file and the heartbeat: validated whole, refused in one line naming the field."""

from __future__ import annotations

import json

import pytest

from inferedge.api.site import Heartbeat, SiteConfig, SiteError, parse_heartbeat, parse_site

POOL = {"name": "nano", "version": "resnet18", "replicas": 2, "throughput": 40, "accuracy": 0.9}
SITE = {"namespace": "default", "pipeline": "p", "inputShape": [1, 16, 16], "targetRate": 30}


def site(**changes: object) -> bytes:
    return (
        SiteConfig.model_validate({**SITE, "pools": [POOL], **changes})
        .model_dump_json(by_alias=True)
        .encode()
    )


def test_a_site_file_round_trips() -> None:
    config = parse_site(site(), "site.json")
    assert config.pools[0].queue_limit == 4
    assert config.max_attempts == 4


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{", "site.json: (root): Invalid JSON"),
        (b'{"namespace": "default"}', "site.json: pipeline: Field required"),
        (
            b'{"namespace": "default", "pipeline": "p", "inputShape": [1], "targetRate": 1, '
            b'"pools": [{"name": "a", "version": "v", "replicas": 1, "throughput": 0, '
            b'"accuracy": 0.5}]}',
            "pools.0.throughput",
        ),
        (
            b'{"namespace": "default", "pipeline": "p", "inputShape": [1], "targetRate": 1, '
            b'"pools": [{"name": "a", "version": "v", "replicas": 1, "throughput": 1, '
            b'"accuracy": 0.5}, {"name": "a", "version": "v", "replicas": 1, "throughput": 1, '
            b'"accuracy": 0.5}]}',
            "names must be unique, a repeats",
        ),
        (
            b'{"namespace": "Bad", "pipeline": "p", "inputShape": [1], "targetRate": 1, '
            b'"pools": []}',
            "namespace",
        ),
    ],
)
def test_a_bad_site_file_is_named_in_one_line(body: bytes, named: str) -> None:
    with pytest.raises(SiteError, match=named.replace("(", r"\(").replace(")", r"\)")) as caught:
        parse_site(body, "site.json")
    assert "\n" not in str(caught.value)


def test_a_heartbeat_is_validated_whole() -> None:
    beat = Heartbeat(
        pool="nano", replica="nano-0", plan_hash="ab12", in_flight=1, answered=5,
        busy_s=0.5, interval_s=0.5,
    )  # fmt: skip
    assert parse_heartbeat(beat.model_dump_json(by_alias=True).encode()) == beat
    for bad, field in (
        (b"not json", "heartbeat"),
        (b'{"pool": "nano"}', "replica"),
        (beat.model_dump_json(by_alias=True).replace('"ab12"', '"../x"').encode(), "planHash"),
        (beat.model_dump_json(by_alias=True).replace('"answered":5', '"answered":-1').encode(),
         "answered"),
    ):  # fmt: skip
        with pytest.raises(SiteError, match=field):
            parse_heartbeat(bad)


def test_fixed_shares_name_pools_of_the_site() -> None:
    assert parse_site(site(fixedShares={"nano": 1.0}), "s").fixed_shares == {"nano": 1.0}
    for shares, named in (({"xu4": 1.0}, "no pool named xu4"), ({"nano": 0.0}, "above 0")):
        body = json.dumps({**SITE, "pools": [POOL], "fixedShares": shares}).encode()
        with pytest.raises(SiteError, match=named):
            parse_site(body, "s")


XU4 = {**POOL, "name": "xu4"}
STAGES = [{"pool": "nano", "start": 0, "end": 3}, {"pool": "xu4", "start": 3, "end": 7}]


def test_a_pipeline_names_every_pool_once_with_consecutive_cuts() -> None:
    body = json.dumps(
        {**SITE, "pools": [POOL, XU4], "stages": STAGES, "stagePlan": "ab" * 8}
    ).encode()
    config = parse_site(body, "s")
    assert config.stages is not None
    assert [(s.pool, s.start, s.end) for s in config.stages] == [("nano", 0, 3), ("xu4", 3, 7)]


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"stages": STAGES}, "stages and stagePlan go together"),
        ({"stages": STAGES[:1], "stagePlan": "ab" * 8}, "each of the pools nano, xu4 once"),
        ({"stages": [STAGES[0], {**STAGES[1], "start": 4}], "stagePlan": "ab" * 8},
         r"stages\[1\].start: expected 3"),
        ({"stages": [{**STAGES[0], "start": 1}, STAGES[1]], "stagePlan": "ab" * 8},
         r"stages\[0\].start: expected 0"),
        ({"stages": [STAGES[0], {**STAGES[1], "end": 3}], "stagePlan": "ab" * 8},
         "must come after start"),
        ({"stages": STAGES, "stagePlan": "ab" * 8, "fixedShares": {"nano": 1.0}},
         "cannot be set"),
        ({"stages": STAGES, "stagePlan": "XYZ"}, "stagePlan"),
    ],
)  # fmt: skip
def test_a_bad_pipeline_is_named_in_one_line(changes: dict[str, object], named: str) -> None:
    body = json.dumps({**SITE, "pools": [POOL, XU4], **changes}).encode()
    with pytest.raises(SiteError, match=named) as caught:
        parse_site(body, "s")
    assert "\n" not in str(caught.value)
