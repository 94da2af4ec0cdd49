"""LocalStore specifics: atomic writes, in-flight files, permissions, URIs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from inferedge.storage import LocalStore, StoreError
from inferedge.storage._files import PARTIAL_SUFFIX, atomic_write


def crash_while_writing(target: Path) -> None:
    with atomic_write(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("writer crashed")


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer crashed"):
        crash_while_writing(target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def test_a_reader_sees_the_old_content_until_the_write_completes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("k", b"old")
    with atomic_write(tmp_path / "k") as handle:
        handle.write(b"new")
        handle.flush()
        assert store.get_bytes("k") == b"old"
        assert store.list("") == ["k"]  # the in-flight file is not a key
    assert store.get_bytes("k") == b"new"


def test_in_flight_suffix_is_reserved(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="reserved"):
        LocalStore(tmp_path).put_bytes(f"a/b{PARTIAL_SUFFIX}", b"x")


def test_files_are_readable_by_others(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("k", b"x")
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o644


def test_root_is_absolute_and_created_on_first_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = LocalStore(Path("artifacts"))
    assert store.root == tmp_path / "artifacts"
    assert store.uri == (tmp_path / "artifacts").as_uri()
    assert store.list("") == []
    assert not store.root.exists()
    store.put_bytes("a/b", b"x")
    assert (tmp_path / "artifacts" / "a" / "b").read_bytes() == b"x"


def test_delete_prunes_directories_it_emptied(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    store.put_bytes("a/b/c", b"x")
    store.put_bytes("a/d", b"x")
    store.delete_prefix("a/b")
    assert sorted(p.name for p in (tmp_path / "root" / "a").iterdir()) == ["d"]
    store.delete("a/d")
    assert list((tmp_path / "root").iterdir()) == []
    assert (tmp_path / "root").is_dir()


def test_a_directory_is_not_a_key(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("dir/file", b"x")
    with pytest.raises(StoreError, match="key 'dir' not found"):
        store.get_bytes("dir")
