"""The ArtifactStore contract, run against every store kind (a directory and S3 on moto)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from inferedge.storage import ArtifactStore, StoreError, sha256_file

LARGE_SIZE = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def large_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 50 MiB file of random bytes, shared by the stores."""
    path = tmp_path_factory.mktemp("large") / "blob.bin"
    path.write_bytes(os.urandom(LARGE_SIZE))
    return path


def test_bytes_round_trip_and_overwrite(store: ArtifactStore) -> None:
    store.put_bytes("ns/pipe/a.bin", b"first")
    assert store.get_bytes("ns/pipe/a.bin") == b"first"
    store.put_bytes("ns/pipe/a.bin", b"second")
    assert store.get_bytes("ns/pipe/a.bin") == b"second"
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b""


def test_file_round_trip_creates_parent_directories(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"\x00\x01payload" * 1000)
    store.put_file("ns/pipe/edge/segment_0.pt2", source)
    dest = tmp_path / "deep" / "down" / "copy.bin"
    store.get_file("ns/pipe/edge/segment_0.pt2", dest)
    assert dest.read_bytes() == source.read_bytes()


def test_exists_only_for_objects(store: ArtifactStore) -> None:
    store.put_bytes("a/b/c", b"x")
    assert store.exists("a/b/c")
    assert not store.exists("a/b")
    assert not store.exists("a/b/d")


def test_list_is_sorted_relative_and_scoped_to_a_directory(store: ArtifactStore) -> None:
    for key in ["a/b/z", "a/b/c/d", "a/bc/x", "a/b/a", "top"]:
        store.put_bytes(key, key.encode())
    assert store.list("a/b") == ["a/b/a", "a/b/c/d", "a/b/z"]
    assert store.list("a/b/") == store.list("a/b")
    assert store.list("") == ["a/b/a", "a/b/c/d", "a/b/z", "a/bc/x", "top"]
    assert store.list("nothing/here") == []


def test_delete_and_delete_prefix(store: ArtifactStore) -> None:
    for key in ["s/1/a", "s/1/b/c", "s/10/a", "s/2"]:
        store.put_bytes(key, b"x")
    store.delete("s/2")
    store.delete("s/2")  # deleting a missing key is not an error
    assert store.delete_prefix("s/1") == 2
    assert store.list("") == ["s/10/a"]
    assert store.delete_prefix("s/1") == 0


def test_delete_prefix_refuses_the_whole_store(store: ArtifactStore) -> None:
    store.put_bytes("keep", b"x")
    with pytest.raises(StoreError, match="refusing to delete the whole store"):
        store.delete_prefix("")
    assert store.exists("keep")


def test_missing_key_names_store_and_key(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        store.get_bytes("ns/missing.bin")
    message = str(caught.value)
    assert message == f"{store.uri}: key 'ns/missing.bin' not found"
    dest = tmp_path / "out.bin"
    with pytest.raises(StoreError, match=r"'ns/missing\.bin' not found"):
        store.get_file("ns/missing.bin", dest)
    assert not dest.exists()


def test_upload_of_a_missing_local_file(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"cannot upload key 'k'.*does not exist"):
        store.put_file("k", tmp_path / "nope.bin")
    assert not store.exists("k")


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "non-empty"),
        ("/abs/key", "leading '/'"),
        ("a//b", "empty segments"),
        ("a/b/", "empty segments"),
        ("a/../b", "'..'"),
        ("./a", "'.'"),
        ("a\\b", "separator"),
        ("a\nb", "control"),
        ("x" * 1025, "1024 bytes"),
    ],
)
def test_invalid_keys_are_refused(store: ArtifactStore, key: str, problem: str) -> None:
    for operation in (lambda: store.put_bytes(key, b"x"), lambda: store.get_bytes(key)):
        with pytest.raises(StoreError, match="invalid key") as caught:
            operation()
        assert problem in str(caught.value)
        assert "\n" not in str(caught.value)
    assert store.list("") == []


def test_50_mib_file_round_trip(store: ArtifactStore, large_file: Path, tmp_path: Path) -> None:
    started = time.perf_counter()
    store.put_file("big/blob.bin", large_file)
    dest = tmp_path / "blob.bin"
    store.get_file("big/blob.bin", dest)
    elapsed = time.perf_counter() - started
    assert dest.stat().st_size == LARGE_SIZE
    assert sha256_file(dest) == sha256_file(large_file)
    assert hashlib.sha256(store.get_bytes("big/blob.bin")).hexdigest() == sha256_file(large_file)
    # Not an assertion: printed for `pytest -s`, to compare the stores' throughput.
    print(f"{store.uri}: 50 MiB up+down in {elapsed:.2f} s = {2 * 50 / elapsed:.0f} MiB/s")
