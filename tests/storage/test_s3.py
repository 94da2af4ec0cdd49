"""S3Store specifics on a real moto server: multipart, store prefixes, buckets, options."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from minio import Minio

from inferedge.storage import StoreError
from inferedge.storage.s3 import MiB, S3Store
from tests.storage.conftest import MOTO_CREDENTIALS, make_s3_store


def raw_client(endpoint: str) -> Minio:
    return Minio(
        endpoint,
        access_key=MOTO_CREDENTIALS.access_key,
        secret_key=MOTO_CREDENTIALS.secret_key,
        secure=False,
        region="us-east-1",
    )


def test_a_file_larger_than_a_part_is_uploaded_in_parts(
    moto_endpoint: str, s3_store: S3Store, tmp_path: Path
) -> None:
    source = tmp_path / "two-parts.bin"
    source.write_bytes(os.urandom(s3_store.part_size + MiB))
    s3_store.put_file("big.bin", source)
    etag = raw_client(moto_endpoint).stat_object(s3_store.bucket, "stores/contract/big.bin").etag
    assert str(etag).endswith("-2")  # S3's multipart ETag: <hash>-<number of parts>


def test_stores_with_different_prefixes_share_a_bucket_without_seeing_each_other(
    moto_endpoint: str,
) -> None:
    first = make_s3_store(moto_endpoint, prefix="one")
    first.ensure_bucket()
    second = make_s3_store(moto_endpoint, bucket=first.bucket, prefix="one/two/")
    whole = make_s3_store(moto_endpoint, bucket=first.bucket)
    first.put_bytes("a", b"1")
    second.put_bytes("b", b"2")
    assert second.uri == f"s3://{first.bucket}/one/two"
    assert first.list("") == ["a", "two/b"]
    assert second.list("") == ["b"]
    assert whole.list("") == ["one/a", "one/two/b"]
    second.delete("b")
    assert whole.list("") == ["one/a"]


def test_ensure_bucket_creates_once(moto_endpoint: str) -> None:
    store = make_s3_store(moto_endpoint)
    assert store.ensure_bucket() is True
    assert store.ensure_bucket() is False


def test_a_missing_bucket_is_named_with_what_to_check(moto_endpoint: str) -> None:
    store = make_s3_store(moto_endpoint, bucket="no-such-bucket-here")
    with pytest.raises(StoreError) as caught:
        store.put_bytes("k", b"x")
    assert str(caught.value) == (
        f"s3://no-such-bucket-here: bucket 'no-such-bucket-here' does not exist at "
        f"http://{moto_endpoint} (create it, or check the bucket name)"
    )


def build(
    bucket: str = "ok-bucket",
    part_size: int = 16 * MiB,
    max_attempts: int = 5,
    backoff_s: float = 0,
) -> S3Store:
    return S3Store(
        bucket,
        endpoint="127.0.0.1:9",
        credentials=MOTO_CREDENTIALS,
        part_size=part_size,
        max_attempts=max_attempts,
        backoff_s=backoff_s,
    )


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: build(bucket="Bad_Bucket"), "s3://Bad_Bucket: invalid bucket name"),
        (lambda: build(part_size=MiB), "part_size=1048576: expected 5 MiB to 5 GiB"),
        (lambda: build(max_attempts=0), "max_attempts=0: expected at least 1"),
        (lambda: build(backoff_s=-1.0), "backoff_s=-1.0: expected a non-negative"),
    ],
)
def test_invalid_options_are_refused(make: Callable[[], S3Store], problem: str) -> None:
    with pytest.raises(StoreError, match=problem):
        make()


def test_repr_hides_the_secret() -> None:
    store = S3Store("bucket", endpoint="127.0.0.1:9", credentials=MOTO_CREDENTIALS, secure=False)
    assert repr(store) == "S3Store('s3://bucket', endpoint='http://127.0.0.1:9')"
    assert "testing', secret" not in repr(MOTO_CREDENTIALS)
    assert repr(MOTO_CREDENTIALS) == "S3Credentials(access_key='testing')"
