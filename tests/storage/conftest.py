"""Storage fixtures: a real moto S3 server for the session, and every store kind per test."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from inferedge.storage import ArtifactStore, LocalStore
from inferedge.storage.s3 import S3Store
from inferedge.storage.s3config import S3Credentials

MOTO_CREDENTIALS = S3Credentials("testing", "testing")


def make_s3_store(
    endpoint: str, bucket: str | None = None, prefix: str = "", max_attempts: int = 5
) -> S3Store:
    """An S3Store on `endpoint` (moto, or a proxy in front of it) with fast retries."""
    return S3Store(
        bucket or f"test-{uuid.uuid4().hex[:16]}",
        prefix,
        endpoint=endpoint,
        credentials=MOTO_CREDENTIALS,
        secure=False,
        region="us-east-1",
        max_attempts=max_attempts,
        backoff_s=0.01,
        timeout_s=10.0,
    )


@pytest.fixture
def s3_store(moto_endpoint: str) -> S3Store:
    """An S3Store on a fresh, empty bucket under a store prefix."""
    store = make_s3_store(moto_endpoint, prefix="stores/contract")
    store.ensure_bucket()
    return store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """Each store kind in turn, empty: the contract suite runs against all of them."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    s3: S3Store = request.getfixturevalue("s3_store")
    return s3
