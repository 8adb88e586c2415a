import dataclasses
import struct

import pytest

from snfcodec import container
from snfcodec.container import MAGIC, Header, TensorHeader
from snfcodec.entropy import SymbolModel
from snfcodec.errors import SnfFormatError
from snfcodec.field import FieldConfig
from snfcodec.grid import TileLayout


def _header(**kw):
    field = FieldConfig(2, 3, 8, 2, 30.0, 1.5, 1.0)
    tiling = TileLayout((40, 24), (16, 16), (4, 4))
    tensors = tuple(TensorHeader(0.01 * (i + 1), SymbolModel(-3 - i, 4 + i, i % 2, 1.5)) for i in range(6))
    return Header(kw.get("kind", 1), 3, 0, field, tiling, tensors)


def test_round_trip():
    h = _header()
    data = container.write(h, b"\x01\x02\x03\x04" * 3)
    h2, payload = container.read(data)
    assert payload == b"\x01\x02\x03\x04" * 3
    assert h2.field == h.field and h2.tiling == h.tiling and h2.kind == 1 and h2.channels == 3
    for a, b in zip(h.tensors, h2.tensors):
        assert a.model == b.model and a.step == pytest.approx(b.step, rel=1e-7)
    assert len(data) == container.header_size(2, 2) + 12
    assert h2.to_dict()["parameters"] == 6 * FieldConfig(2, 3, 8, 2).params_per_field()


def test_unknown_version_is_refused_with_a_clear_message(resign):
    data = bytearray(container.write(_header(), b""))
    data[4] = 4
    with pytest.raises(SnfFormatError, match="version 4 is not supported"):
        container.read(resign(bytes(data)))


def test_a_file_without_a_prior_is_version_1_and_one_with_a_prior_version_2():
    plain = container.write(_header(), b"")
    assert plain[4] == 1 and container.read(plain)[0].prior is None
    ref = container.PriorRef(7, 0xDEADBEEF)
    coded = container.write(dataclasses.replace(_header(), prior=ref), b"")
    assert coded[4] == 2 and len(coded) == len(plain) + 8
    assert container.read(coded)[0].prior == ref


def test_version_2_without_its_prior_reference_is_refused(resign):
    data = bytearray(container.write(_header(), b""))
    data[4] = 2  # a version-1 header relabelled: the prior reference is missing
    with pytest.raises(SnfFormatError, match="prior reference"):
        container.read(resign(bytes(data)))


def test_valid_checksum_does_not_excuse_insane_sizes(resign):
    data = bytearray(container.write(_header(), b""))
    # Overwrite the first shape entry (height) with 2^31 and re-sign the file: still refused, before allocating.
    offset = 16 + struct.calcsize("<BBBBHHfffI")
    data[offset:offset + 4] = struct.pack("<I", 1 << 31)
    with pytest.raises(SnfFormatError, match="shape"):
        container.read(resign(bytes(data)))


def test_not_an_snf_file():
    with pytest.raises(SnfFormatError, match="signature"):
        container.read(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert MAGIC == b"\x89SNF"


def test_audio_may_be_longer_than_an_image_is_tall_within_the_parameter_limit():
    tensors = tuple(TensorHeader(0.01, SymbolModel(-3, 4, 0, 1.5)) for _ in range(8))
    hour = TileLayout((172_800_000,), (2960,), (32,))  # an hour at 48 kHz, 64 kb/s: 58,379 segments
    field = FieldConfig(1, 2, 16, 3)
    assert container.size_problem(container.KIND_AUDIO, field, hour) is None
    header, _ = container.read(container.write(Header(container.KIND_AUDIO, 0, 48000, field, hour, tensors), b""))
    assert header.tiling == hour
    tall = TileLayout((1 << 25, 8), (1 << 24, 8), (0, 0))
    assert "samples along one dimension" in container.size_problem(container.KIND_IMAGE, FieldConfig(2, 3, 4), tall)
    wide = FieldConfig(1, 2, 200, 3)  # 82,002 parameters a segment: 4.8 G in all
    assert "parameters exceeds" in container.size_problem(container.KIND_AUDIO, wide, hour)
