import ctypes.util
import sys

import pytest

from snfcodec import allocator


@pytest.mark.skipif(not sys.platform.startswith("linux") or "libc.so" not in str(ctypes.util.find_library("c")),
                    reason="glibc only")
def test_glibc_thresholds_are_raised_once(monkeypatch):
    monkeypatch.setattr(allocator, "_done", False)
    monkeypatch.delenv("SNFCODEC_KEEP_MALLOC", raising=False)
    assert allocator.reuse_freed_memory() is True
    assert allocator.reuse_freed_memory() is True  # idempotent


def test_the_environment_can_keep_the_allocator_as_it_is(monkeypatch):
    monkeypatch.setattr(allocator, "_done", False)
    monkeypatch.setenv("SNFCODEC_KEEP_MALLOC", "1")
    assert allocator.reuse_freed_memory() is False
    assert allocator._done is False
