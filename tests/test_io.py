"""Atomic writes: complete files or none, never a half-written one, no temporary files left."""

import os
import stat

import pytest

from metabo.io import atomic_path, atomic_write_bytes, atomic_write_text, atomic_write_with


def leftovers(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


def test_write_text_and_bytes_create_parents(tmp_path):
    target = tmp_path / "deep" / "er" / "file.txt"
    atomic_write_text(target, "héllo\n")
    assert target.read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(str(target), b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert leftovers(target.parent) == []


def test_overwrite_replaces_the_whole_file(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "a much longer first version\n")
    atomic_write_text(target, "short\n")
    assert target.read_text() == "short\n"


def test_failed_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    atomic_write_text(target, "old")

    def writer(tmp):
        with open(tmp, "w") as fh:
            fh.write("half of the new cont")
        raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError, match="crash in the middle"):
        atomic_write_with(target, writer)
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_failure_before_any_file_exists_creates_nothing(tmp_path):
    target = tmp_path / "new.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            assert os.path.dirname(tmp) == str(tmp_path)  # same filesystem: the rename is atomic
            raise KeyboardInterrupt
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_writer_output_appears_only_on_success(tmp_path):
    target = tmp_path / "out.csv"
    seen_during_write = []

    def writer(tmp):
        with open(tmp, "w") as fh:
            fh.write("a,b\n1,2\n")
        seen_during_write.append(target.exists())

    atomic_write_with(target, writer)
    assert seen_during_write == [False]
    assert target.read_text() == "a,b\n1,2\n"
    assert leftovers(tmp_path) == []


def test_new_files_get_the_umask_and_replaced_files_keep_their_mode(tmp_path):
    old = os.umask(0o027)
    try:
        fresh = tmp_path / "fresh.json"
        atomic_write_text(fresh, "{}")
        assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o640  # 0666 & ~0027, not mkstemp's 0600
        kept = tmp_path / "kept.txt"
        kept.write_text("old")
        os.chmod(kept, 0o604)
        atomic_write_text(kept, "new")
        assert stat.S_IMODE(os.stat(kept).st_mode) == 0o604 and kept.read_text() == "new"
    finally:
        os.umask(old)
