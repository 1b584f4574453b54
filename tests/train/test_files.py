"""Writing a run's files: temporary names unique to each writer, all files written before any is
renamed, renames in the order given, and a WriteError naming the file when the disk is full."""

import errno
import os

import pytest

from minicnn.train.files import WriteError, append_line, is_temporary, write_atomically


def test_each_write_has_its_own_temporary_file_beside_the_target(tmp_path):
    seen = []

    def write(file):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        file.write(b"new")

    write_atomically({tmp_path / "last.npz": write})
    write_atomically({tmp_path / "last.npz": write})
    first, second = (names[0] for names in seen)
    assert first != second and all(name.startswith(f".last.npz.{os.getpid()}-") for name in (first, second))
    assert is_temporary(first, "last.npz") and not is_temporary(first, "best.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.npz"] and (tmp_path / "last.npz").read_bytes() == b"new"


def test_files_are_renamed_in_the_order_given_once_all_are_written(tmp_path, monkeypatch):
    renamed, replace = [], os.replace
    monkeypatch.setattr(os, "replace", lambda source, target: (renamed.append(target.name), replace(source, target)))
    write_atomically({tmp_path / "b.json": lambda file: file.write(b"1"), tmp_path / "a.npz": lambda file: file.write(b"2")})
    assert renamed == ["b.json", "a.npz"]


@pytest.mark.parametrize("number, advice", [(errno.ENOSPC, "the disk is full: free some space"),
                                            (errno.EACCES, "check that {folder} can be written")])
def test_a_failed_write_names_the_file_and_replaces_nothing(tmp_path, number, advice):
    for name in ("a.json", "a.npz"):
        (tmp_path / name).write_bytes(b"old")

    def fail(file):
        file.write(b"half")
        raise OSError(number, os.strerror(number))

    with pytest.raises(WriteError) as raised:
        write_atomically({tmp_path / "a.json": lambda file: file.write(b"new"), tmp_path / "a.npz": fail})
    assert str(raised.value) == (f"could not write {tmp_path / 'a.npz'} ({os.strerror(number)}); "
                                 f"{advice.format(folder=tmp_path)}. a.npz is left as it was")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {"a.json": b"old", "a.npz": b"old"}


def test_a_failed_append_names_the_file(tmp_path):
    (tmp_path / "metrics.jsonl").mkdir()  # opening a folder to append fails as a full disk would
    with pytest.raises(WriteError, match=rf"could not write {tmp_path / 'metrics.jsonl'} \(Is a directory\)"):
        append_line(tmp_path / "metrics.jsonl", "{}")
    append_line(tmp_path / "log.jsonl", '{"epoch": 1}')
    append_line(tmp_path / "log.jsonl", '{"epoch": 2}')
    assert (tmp_path / "log.jsonl").read_text() == '{"epoch": 1}\n{"epoch": 2}\n'
