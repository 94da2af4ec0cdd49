"""open_store URIs, and S3 settings and credentials from the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inferedge.storage import LocalStore, StoreError, open_store
from inferedge.storage.s3 import S3Store
from inferedge.storage.s3config import S3Credentials, S3Settings, parse_endpoint

MOTO_ENV = {"INFEREDGE_S3_ACCESS_KEY": "testing", "INFEREDGE_S3_SECRET_KEY": "testing"}


def test_a_plain_path_or_file_uri_opens_a_directory(tmp_path: Path) -> None:
    for uri in [str(tmp_path / "a"), (tmp_path / "a").as_uri(), f"file://localhost{tmp_path}/a"]:
        store = open_store(uri)
        assert isinstance(store, LocalStore)
        assert store.root == tmp_path / "a"


def test_an_s3_uri_opens_a_bucket_configured_from_env(moto_endpoint: str) -> None:
    env = {**MOTO_ENV, "INFEREDGE_S3_ENDPOINT": f"http://{moto_endpoint}"}
    store = open_store("s3://open-store-bucket/ns/pipe/", env=env)
    assert isinstance(store, S3Store)
    assert (store.uri, store.prefix, store.endpoint_url) == (
        "s3://open-store-bucket/ns/pipe",
        "ns/pipe",
        f"http://{moto_endpoint}",
    )
    assert store.region == "us-east-1"
    store.ensure_bucket()
    store.put_bytes("k", b"x")
    assert open_store("s3://open-store-bucket", env=env).list("") == ["ns/pipe/k"]


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("", "URI is empty"),
        ("gs://bucket/x", "unsupported scheme 'gs'"),
        ("http://host/x", "unsupported scheme 'http'"),
        ("file://server/share", "absolute local path"),
        ("s3://", "no bucket"),
        ("s3:///prefix", "no bucket"),
    ],
)
def test_other_uris_name_the_accepted_forms(uri: str, problem: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(uri, env=MOTO_ENV)
    message = str(caught.value)
    assert problem in message
    assert message.endswith(
        "expected a directory path, file:///absolute/path or s3://bucket[/prefix]"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://minio:9000", ("minio:9000", False)),
        ("https://s3.example.com", ("s3.example.com", True)),
        ("https://s3.example.com/", ("s3.example.com", True)),
        ("minio.svc:9000", ("minio.svc:9000", True)),
        ("127.0.0.1:9000", ("127.0.0.1:9000", True)),
    ],
)
def test_the_endpoint_scheme_decides_tls(value: str, expected: tuple[str, bool]) -> None:
    assert parse_endpoint(value) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("ftp://host", "unsupported scheme 'ftp'"),
        ("http://", "no host"),
        ("http://host:9000/bucket", "no path"),
        ("http://host:99999", "invalid port"),
    ],
)
def test_bad_endpoints_are_refused(value: str, problem: str) -> None:
    with pytest.raises(StoreError, match=problem) as caught:
        parse_endpoint(value)
    assert str(caught.value).startswith(f"INFEREDGE_S3_ENDPOINT={value!r}: ")


def test_settings_default_to_aws() -> None:
    settings = S3Settings.from_env(MOTO_ENV)
    assert (settings.endpoint, settings.secure, settings.region) == (
        "s3.amazonaws.com",
        True,
        "us-east-1",
    )
    assert (
        S3Settings.from_env({**MOTO_ENV, "INFEREDGE_S3_REGION": "eu-west-1"}).region == "eu-west-1"
    )


def test_credentials_from_project_variables_win_over_aws_ones() -> None:
    env = {
        "INFEREDGE_S3_ACCESS_KEY": "mine",
        "INFEREDGE_S3_SECRET_KEY": "my-secret",
        "AWS_ACCESS_KEY_ID": "other",
        "AWS_SECRET_ACCESS_KEY": "other-secret",
    }
    assert S3Credentials.from_env(env) == S3Credentials("mine", "my-secret")
    aws_only = {"AWS_ACCESS_KEY_ID": "other", "AWS_SECRET_ACCESS_KEY": "other-secret"}
    assert S3Credentials.from_env(aws_only) == S3Credentials("other", "other-secret")


def test_credentials_from_a_mounted_secret_directory(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "accessKey").write_text("from-dir\n")
    (secret / "secretKey").write_text("dir-secret\n")
    env = {"INFEREDGE_S3_CREDENTIALS_FILE": str(secret), "AWS_ACCESS_KEY_ID": "ignored"}
    assert S3Credentials.from_env(env) == S3Credentials("from-dir", "dir-secret")
    (secret / "secretKey").unlink()
    with pytest.raises(StoreError, match="'secretKey' is missing"):
        S3Credentials.from_env(env)


def test_credentials_from_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "s3.json"
    path.write_text(json.dumps({"accessKey": "from-json", "secretKey": "json-secret"}))
    env = {"INFEREDGE_S3_CREDENTIALS_FILE": str(path)}
    assert S3Credentials.from_env(env) == S3Credentials("from-json", "json-secret")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"accessKey": "a", "secretKey": "super-secret"', "line 1 column"),
        ('["a", "b"]', "expected a JSON object"),
        ('{"accessKey": "a", "secretKey": 7}', "'secretKey' missing or not a non-empty string"),
    ],
)
def test_a_malformed_json_file_is_named_without_its_content(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "s3.json"
    path.write_text(content)
    with pytest.raises(StoreError) as caught:
        S3Credentials.from_env({"INFEREDGE_S3_CREDENTIALS_FILE": str(path)})
    message = str(caught.value)
    assert message.startswith(f"INFEREDGE_S3_CREDENTIALS_FILE={str(path)!r}: ")
    assert problem in message
    assert "super-secret" not in message


def test_a_missing_credentials_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(StoreError, match="no such file or directory"):
        S3Credentials.from_env({"INFEREDGE_S3_CREDENTIALS_FILE": str(missing)})


def test_missing_credentials_name_the_variables_to_set() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("s3://bucket/prefix", env={"INFEREDGE_S3_ENDPOINT": "http://127.0.0.1:9"})
    assert str(caught.value) == (
        "no S3 credentials: set INFEREDGE_S3_ACCESS_KEY and INFEREDGE_S3_SECRET_KEY "
        "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or INFEREDGE_S3_CREDENTIALS_FILE "
        "to a mounted Secret directory or a JSON file"
    )


def test_half_a_key_pair_names_the_missing_half() -> None:
    with pytest.raises(StoreError) as caught:
        S3Credentials.from_env({"INFEREDGE_S3_ACCESS_KEY": "a"})
    assert str(caught.value) == (
        "INFEREDGE_S3_ACCESS_KEY is set but INFEREDGE_S3_SECRET_KEY is not: set both or neither"
    )
