"""Hostile .snf bytes: every damaged file ends in SnfFormatError, quickly, and nothing else escapes."""

import os
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import snfcodec
from snfcodec.errors import SnfFormatError

PREFIX = 16


# A crafted file may legitimately describe a large image (a field has no native resolution); a service decoding
# untrusted files lowers the output limit, as these tests do, so that every case ends quickly.
LIMIT = 1 << 20


def _decode_or_format_error(data: bytes):
    """Returns the decoded array or None (format error); any other exception fails the test."""
    start = time.perf_counter()
    try:
        out = snfcodec.decode(data, max_samples=LIMIT)
        snfcodec.info(data)
    except SnfFormatError:
        out = None
    assert time.perf_counter() - start < 1.0
    return out


def test_every_truncation(tiny_snf):
    for n in range(len(tiny_snf)):
        with pytest.raises(SnfFormatError):
            snfcodec.decode(tiny_snf[:n])


def test_every_bit_flip_is_detected(tiny_snf):
    for i in range(len(tiny_snf)):
        for bit in range(8):
            bad = bytearray(tiny_snf)
            bad[i] ^= 1 << bit
            with pytest.raises(SnfFormatError):
                snfcodec.decode(bytes(bad))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_corruption_is_detected(tiny_snf, data):
    bad = bytearray(tiny_snf)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(bad) - 1))
        bad[i] = data.draw(st.integers(0, 255))
    if bytes(bad) != tiny_snf:
        with pytest.raises(SnfFormatError):
            snfcodec.decode(bytes(bad))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_header_overwrites_with_a_valid_checksum(tiny_snf, resign, data):
    # A crafted file passes the checksum; every field must still be validated before use.
    header_end = PREFIX + struct.unpack_from("<I", tiny_snf, 8)[0]
    bad = bytearray(tiny_snf)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(4, header_end - 1))
        width = data.draw(st.sampled_from([1, 2, 4]))
        value = data.draw(st.integers(0, 2 ** (8 * width) - 1))
        bad[i:i + width] = value.to_bytes(width, "little")[: len(bad[i:i + width])]
    _decode_or_format_error(resign(bytes(bad)))


@pytest.mark.parametrize("offset,fmt,value", [
    (40, "<I", 1 << 24),  # height 2^24
    (40, "<I", 70_000),   # plausible-looking but huge image
    (44, "<I", 1 << 20),  # width
    (20, "<H", 1024),     # network width: the payload no longer matches
    (19, "<B", 16),       # sine layers
    (48, "<I", 1),        # tile height 1: the network no longer matches the payload
    (36, "<I", 44100),    # a sample rate on an image
])
def test_oversize_declarations_are_refused_fast(tiny_snf, resign, offset, fmt, value):
    bad = bytearray(tiny_snf)
    struct.pack_into(fmt, bad, offset, value)
    assert _decode_or_format_error(resign(bytes(bad))) is None


def test_random_bytes_and_empty_input():
    for data in (b"", b"\x89SNF", b"\x00" * 100, bytes(range(256)) * 4):
        with pytest.raises(SnfFormatError):
            snfcodec.decode(data)


CONFORMANCE = os.path.join(os.path.dirname(__file__), "..", "formats", "conformance")


@pytest.mark.slow
@settings(max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_soak_crafted_and_damaged_files(resign, data):
    """Long soak (``pytest -m slow``): every conformance file, image and audio, damaged and re-signed."""
    names = sorted(n for n in os.listdir(CONFORMANCE) if n.endswith(".snf"))
    with open(os.path.join(CONFORMANCE, data.draw(st.sampled_from(names))), "rb") as f:
        good = f.read()
    bad = bytearray(good)
    for _ in range(data.draw(st.integers(1, 16))):
        i = data.draw(st.integers(0, len(bad) - 1))
        bad[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        bad = bad[: data.draw(st.integers(0, len(bad)))]
    if bytes(bad) != good:
        with pytest.raises(SnfFormatError):
            snfcodec.decode(bytes(bad))
    if len(bad) > 4:
        _decode_or_format_error(resign(bytes(bad)))
