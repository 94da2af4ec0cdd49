"""Device profile JSON: round trip, schema version and one-line validation errors."""

from __future__ import annotations

import json

import pytest

from inferedge.core.errors import ProfileError
from inferedge.core.profile import dump_profile, parse_profile
from inferedge.core.synthetic import synthetic_profile


def test_round_trip_is_lossless() -> None:
    profile = synthetic_profile(12, batch_sizes=(1, 4))
    assert parse_profile(dump_profile(profile), "p.json") == profile


def test_other_schema_version_is_refused_by_name() -> None:
    raw = json.loads(dump_profile(synthetic_profile(3)))
    raw["schema_version"] = "inferedge.io/profile/v0"
    with pytest.raises(ProfileError) as err:
        parse_profile(json.dumps(raw), "old.json")
    assert str(err.value).startswith("old.json: schema_version is 'inferedge.io/profile/v0'")


def test_invalid_json_names_the_file_and_line() -> None:
    with pytest.raises(ProfileError, match=r"^p.json: not valid JSON .* line 1"):
        parse_profile("{nope", "p.json")


def test_field_errors_name_the_field_on_one_line() -> None:
    raw = json.loads(dump_profile(synthetic_profile(3)))
    raw["segments"][1]["measurements"][0]["median_ms"] = -1
    with pytest.raises(ProfileError) as err:
        parse_profile(json.dumps(raw), "p.json")
    message = str(err.value)
    assert message.startswith("p.json: segments.1.measurements.0.median_ms:")
    assert "\n" not in message


def test_segment_count_must_match_cut_points() -> None:
    raw = json.loads(dump_profile(synthetic_profile(3)))
    raw["segments"].pop()
    with pytest.raises(ProfileError, match="4 cut points need 3 segments, got 2"):
        parse_profile(json.dumps(raw), "p.json")


def test_unprofiled_batch_size_is_named() -> None:
    profile = synthetic_profile(3, batch_sizes=(1, 8))
    with pytest.raises(ProfileError, match=r"batch size 4 was not profiled \(profiled: 1, 8\)"):
        profile.segments[0].at(4)
