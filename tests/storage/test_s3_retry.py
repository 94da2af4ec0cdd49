"""Retries against real sockets: a proxy that hangs up or answers errors before relaying to moto,
a port nobody listens on, and a server that refuses the credentials."""

from __future__ import annotations

import pytest

from inferedge.storage import StoreError
from inferedge.storage.s3 import S3Store
from tests.storage.conftest import make_s3_store
from tests.storage.netfaults import FaultyProxy, answer, free_port, hang_up


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    store = make_s3_store(moto_endpoint)
    store.ensure_bucket()
    return store.bucket


def test_upload_succeeds_after_the_server_hangs_up_twice(moto_endpoint: str, bucket: str) -> None:
    with FaultyProxy(moto_endpoint, faults=2, fault=hang_up) as proxy:
        make_s3_store(proxy.address, bucket).put_bytes("k", b"payload")
        assert proxy.connections == 3
    assert make_s3_store(moto_endpoint, bucket).get_bytes("k") == b"payload"


def test_download_succeeds_after_slow_down_replies(moto_endpoint: str, bucket: str) -> None:
    make_s3_store(moto_endpoint, bucket).put_bytes("k", b"payload")
    slow_down = answer(503, "Please reduce your request rate.", "SlowDown")
    with FaultyProxy(moto_endpoint, faults=3, fault=slow_down) as proxy:
        assert make_s3_store(proxy.address, bucket).get_bytes("k") == b"payload"
        assert proxy.connections == 4


def test_a_bodiless_503_is_retried(moto_endpoint: str, bucket: str) -> None:
    make_s3_store(moto_endpoint, bucket).put_bytes("k", b"payload")
    with FaultyProxy(moto_endpoint, faults=2, fault=answer(503, "Busy", None)) as proxy:
        assert make_s3_store(proxy.address, bucket).exists("k")
        assert proxy.connections == 3


def test_persistent_failure_stops_after_max_attempts(moto_endpoint: str, bucket: str) -> None:
    with FaultyProxy(moto_endpoint, faults=100, fault=hang_up) as proxy:
        store = make_s3_store(proxy.address, bucket, max_attempts=4)
        with pytest.raises(StoreError, match="failed after 4 attempts"):
            store.get_bytes("k")
        assert proxy.connections == 4


def test_a_refused_port_fails_after_max_attempts_naming_the_endpoint() -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    store = make_s3_store(endpoint, bucket="any-bucket", max_attempts=3)
    with pytest.raises(StoreError) as caught:
        store.put_bytes("ns/k", b"x")
    assert str(caught.value) == (
        f"s3://any-bucket: upload of key 'ns/k' failed after 3 attempts; http://{endpoint} "
        "unreachable or failing (ConnectionRefusedError: [Errno 111] Connection refused)"
    )


def test_refused_credentials_are_not_retried(moto_endpoint: str) -> None:
    refuse = answer(403, "The AWS Access Key Id does not exist.", "InvalidAccessKeyId")
    with FaultyProxy(moto_endpoint, faults=100, fault=refuse) as proxy:
        store: S3Store = make_s3_store(proxy.address, bucket="any-bucket")
        with pytest.raises(StoreError) as caught:
            store.get_bytes("k")
        assert proxy.connections == 1
    assert str(caught.value) == (
        f"s3://any-bucket: http://{proxy.address} does not know access key 'testing' "
        "(check INFEREDGE_S3_ACCESS_KEY or the credentials file)"
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("AccessDenied", "access denied to download key 'k' (check that access key 'testing'"),
        ("SignatureDoesNotMatch", "rejected the secret key of access key 'testing'"),
    ],
)
def test_other_permanent_refusals_name_what_to_check(
    moto_endpoint: str, code: str, expected: str
) -> None:
    with FaultyProxy(moto_endpoint, faults=100, fault=answer(403, "Refused", code)) as proxy:
        with pytest.raises(StoreError) as caught:
            make_s3_store(proxy.address, bucket="any-bucket").get_bytes("k")
        assert proxy.connections == 1
    assert expected in str(caught.value)
