"""Safe output files: write beside the target, rename on success, never clobber the input."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Callable, Iterator

from .errors import SnfInputError


def check_not_input(output: str | os.PathLike, *inputs: str | os.PathLike) -> None:
    """Refuse an output path that is one of the inputs (the same file, not just the same string)."""
    out = os.fspath(output)
    for src in inputs:
        if not isinstance(src, (str, os.PathLike)):
            continue
        src = os.fspath(src)
        same = os.path.exists(out) and os.path.exists(src) and os.path.samefile(out, src)
        if same or os.path.abspath(out) == os.path.abspath(src):
            raise SnfInputError(f"{out}: output would overwrite the input; choose another output name")


@contextlib.contextmanager
def _temp_beside(path: str) -> Iterator[str]:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise SnfInputError(f"{path}: directory {directory} does not exist")
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".part{ext}", dir=directory)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would otherwise survive the rename
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, then move the finished file onto ``path``.

    On any error (Ctrl-C included) the temporary file is removed and an existing ``path`` is left untouched.
    The temporary name keeps ``path``'s extension, so writers that pick a format by extension still work.
    """
    path = os.fspath(path)
    with _temp_beside(path) as tmp:
        write(tmp)
        os.replace(tmp, path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    write_atomic(path, write)
