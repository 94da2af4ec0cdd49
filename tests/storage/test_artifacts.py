"""Artifact sets on every store kind: commit order, rollback, immutability, verified fetch."""

from __future__ import annotations

import builtins
import hashlib
from pathlib import Path

import pytest

from inferedge.storage import (
    ArtifactStore,
    IntegrityError,
    StoreError,
    discard,
    fetch,
    is_committed,
    publish,
    read_manifest,
    sha256_file,
)

PREFIX = "default/demo/3f2a9c"
MANIFEST = b'{"files": "..."}'


class InstrumentedStore:
    """Wraps a store: records the order of writes; can fail the Nth write or every delete."""

    def __init__(
        self, inner: ArtifactStore, fail_on_put: int | None = None, fail_deletes: bool = False
    ) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.puts: builtins.list[str] = []
        self._fail_on_put = fail_on_put
        self._fail_deletes = fail_deletes

    def _record(self, key: str) -> None:
        self.puts.append(key)
        if len(self.puts) == self._fail_on_put:
            raise ConnectionResetError(f"injected failure writing {key}")

    def put_bytes(self, key: str, data: bytes) -> None:
        self._record(key)
        self.inner.put_bytes(key, data)

    def put_file(self, key: str, path: Path) -> None:
        self._record(key)
        self.inner.put_file(key, path)

    def get_bytes(self, key: str) -> bytes:
        return self.inner.get_bytes(key)

    def get_file(self, key: str, path: Path) -> None:
        self.inner.get_file(key, path)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str = "") -> builtins.list[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        if self._fail_deletes:
            raise StoreError("injected failure deleting")
        self.inner.delete(key)

    def delete_prefix(self, prefix: str) -> int:
        if self._fail_deletes:
            raise StoreError("injected failure deleting")
        return self.inner.delete_prefix(prefix)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Four artifact files, two of them in a sub-directory."""
    contents = {
        "edge/segment_0.pt2": b"edge weights",
        "edge/exit_1.pt2": b"exit head",
        "cloud/segment_1.pt2": b"cloud weights",
        "thresholds.json": b'{"c_thr": 0.8}',
    }
    paths = {}
    for name, data in contents.items():
        path = tmp_path / "src" / name.replace("/", "__")
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        paths[name] = path
    return paths


def hashes(files: dict[str, Path]) -> dict[str, str]:
    return {name: sha256_file(path) for name, path in files.items()}


def test_publish_writes_every_file_then_the_manifest_last(
    store: ArtifactStore, files: dict[str, Path]
) -> None:
    recorder = InstrumentedStore(store)
    assert not is_committed(store, PREFIX)
    publish(recorder, PREFIX, files, MANIFEST)
    assert recorder.puts[-1] == f"{PREFIX}/manifest.json"
    assert sorted(recorder.puts[:-1]) == sorted(f"{PREFIX}/{name}" for name in files)
    assert is_committed(store, PREFIX)
    assert read_manifest(store, PREFIX) == MANIFEST
    assert store.list(PREFIX) == sorted(
        [f"{PREFIX}/{n}" for n in files] + [f"{PREFIX}/manifest.json"]
    )


@pytest.mark.parametrize("failing_put", [1, 3, 5])  # first file, a middle one, the manifest
def test_a_failed_publish_leaves_nothing_behind(
    store: ArtifactStore, files: dict[str, Path], failing_put: int
) -> None:
    store.put_bytes("default/demo/other/keep.bin", b"a neighbour's artifact")
    with pytest.raises(StoreError) as caught:
        publish(InstrumentedStore(store, fail_on_put=failing_put), PREFIX, files, MANIFEST)
    message = str(caught.value)
    assert message.startswith(f"{store.uri}/{PREFIX}: publish failed and was rolled back: ")
    assert "ConnectionResetError: injected failure writing" in message
    assert store.list(PREFIX) == []
    assert not is_committed(store, PREFIX)
    assert store.list("default") == ["default/demo/other/keep.bin"]


def test_a_missing_source_file_is_named_before_anything_is_written(
    store: ArtifactStore, files: dict[str, Path], tmp_path: Path
) -> None:
    files["thresholds.json"] = tmp_path / "gone.json"
    with pytest.raises(StoreError, match=r"cannot publish 'thresholds\.json':.*gone\.json"):
        publish(store, PREFIX, files, MANIFEST)
    assert store.list(PREFIX) == []


def test_a_failing_rollback_does_not_mask_the_original_error(
    store: ArtifactStore, files: dict[str, Path]
) -> None:
    broken = InstrumentedStore(store, fail_on_put=2, fail_deletes=True)
    with pytest.raises(StoreError, match="injected failure writing"):
        publish(broken, PREFIX, files, MANIFEST)
    assert not is_committed(store, PREFIX)


def test_a_committed_set_is_immutable_and_republishing_it_is_a_no_op(
    store: ArtifactStore, files: dict[str, Path]
) -> None:
    publish(store, PREFIX, files, MANIFEST)
    recorder = InstrumentedStore(store)
    publish(recorder, PREFIX, files, MANIFEST)
    assert recorder.puts == []
    with pytest.raises(StoreError) as caught:
        publish(recorder, PREFIX, files, b'{"files": "different"}')
    assert str(caught.value) == (
        f"{store.uri}/{PREFIX}: already committed with a different manifest.json; "
        "artifact sets are immutable, publish under a new prefix"
    )
    assert recorder.puts == []
    assert read_manifest(store, PREFIX) == MANIFEST


def test_fetch_verifies_and_places_every_file(
    store: ArtifactStore, files: dict[str, Path], tmp_path: Path
) -> None:
    publish(store, PREFIX, files, MANIFEST)
    dest = tmp_path / "dest"
    fetched = fetch(store, PREFIX, dest, hashes(files))
    assert fetched == {name: dest / name for name in sorted(files)}
    for name, path in fetched.items():
        assert path.read_bytes() == files[name].read_bytes()
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == sorted(
        files
    )


def test_fetch_refuses_a_corrupted_file_and_leaves_no_unverified_file(
    store: ArtifactStore, files: dict[str, Path], tmp_path: Path
) -> None:
    publish(store, PREFIX, files, MANIFEST)
    store.put_bytes(f"{PREFIX}/edge/segment_0.pt2", b"tampered")
    dest = tmp_path / "dest"
    with pytest.raises(IntegrityError) as caught:
        fetch(store, PREFIX, dest, hashes(files))
    expected = sha256_file(files["edge/segment_0.pt2"])[:12]
    actual = hashlib.sha256(b"tampered").hexdigest()[:12]
    assert str(caught.value) == (
        f"artifact 'edge/segment_0.pt2' in {store.uri}/{PREFIX}: sha256 mismatch "
        f"(manifest says {expected}…, file has {actual}…)"
    )
    assert list(dest.iterdir()) == []


def test_fetch_refuses_an_uncommitted_set(
    store: ArtifactStore, files: dict[str, Path], tmp_path: Path
) -> None:
    store.put_file(f"{PREFIX}/thresholds.json", files["thresholds.json"])
    with pytest.raises(StoreError, match="not committed"):
        fetch(
            store,
            PREFIX,
            tmp_path / "dest",
            {"thresholds.json": sha256_file(files["thresholds.json"])},
        )
    with pytest.raises(StoreError, match="not committed"):
        read_manifest(store, PREFIX)


def test_fetch_refuses_a_malformed_expected_hash(
    store: ArtifactStore, files: dict[str, Path], tmp_path: Path
) -> None:
    publish(store, PREFIX, files, MANIFEST)
    with pytest.raises(StoreError, match=r"expected sha256 of 'thresholds\.json' is not 64 hex"):
        fetch(store, PREFIX, tmp_path / "dest", {"thresholds.json": "abc"})


def test_discard_removes_the_manifest_and_everything_else(
    store: ArtifactStore, files: dict[str, Path]
) -> None:
    publish(store, PREFIX, files, MANIFEST)
    assert discard(store, PREFIX) == len(files) + 1
    assert store.list("") == []


@pytest.mark.parametrize(
    ("prefix", "names", "problem"),
    [
        ("", ["a"], "needs a prefix"),
        (PREFIX, ["manifest.json"], "may not be named 'manifest.json'"),
        (PREFIX, ["../escape"], "invalid key '../escape'"),
    ],
)
def test_publish_refuses_bad_names(
    store: ArtifactStore, tmp_path: Path, prefix: str, names: builtins.list[str], problem: str
) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    with pytest.raises(StoreError, match=problem):
        publish(store, prefix, dict.fromkeys(names, source), MANIFEST)
    assert store.list("") == []
