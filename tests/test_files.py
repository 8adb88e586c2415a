import os

import pytest

from snfcodec.errors import SnfInputError
from snfcodec.files import check_not_input, write_atomic, write_bytes_atomic


def test_interrupted_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, write)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]


def test_successful_write_replaces_with_normal_permissions(tmp_path):
    target = tmp_path / "out.snf"
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    umask = os.umask(0)
    os.umask(umask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_output_may_not_be_the_input(tmp_path):
    src = tmp_path / "a.png"
    src.write_bytes(b"x")
    os.symlink(src, tmp_path / "link.png")
    for out in (src, tmp_path / "link.png", tmp_path / "." / "a.png"):
        with pytest.raises(SnfInputError, match="overwrite the input"):
            check_not_input(out, src)
    check_not_input(tmp_path / "b.png", src)


def test_missing_output_directory_is_an_input_error(tmp_path):
    with pytest.raises(SnfInputError, match="does not exist"):
        write_bytes_atomic(tmp_path / "nope" / "x.snf", b"")
