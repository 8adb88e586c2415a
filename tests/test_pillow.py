import dataclasses
import io
import os
import warnings

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import snfcodec
import snfcodec.pillow
from snfcodec import codec, container
from snfcodec.grid import TileLayout

CONFORMANCE = os.path.join(os.path.dirname(__file__), "..", "formats", "conformance")


@pytest.fixture
def decodes(monkeypatch):
    """Record every size the plugin asks the codec to sample."""
    sizes = []
    real = codec.decode_image

    def counting(data, *args, **kwargs):
        sizes.append(kwargs.get("size"))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(codec, "decode_image", counting)
    return sizes


@pytest.mark.parametrize("channels,mode", [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_open_gives_mode_and_size_without_decoding_and_load_gives_the_field(photo32, decodes, channels, mode):
    pixels = np.ascontiguousarray(np.concatenate([photo32, photo32[:, :, :1]], axis=2)[:24, :20, :channels])
    data = snfcodec.encode(pixels, bpp=8.0, steps=5).data
    decodes.clear()  # the encoder's own check decode
    im = Image.open(io.BytesIO(data))
    assert (im.format, im.mode, im.size) == ("SNF", mode, (20, 24))
    assert decodes == []
    im.load()
    assert decodes == [(20, 24)]
    assert np.array_equal(np.asarray(im).reshape(24, 20, channels), snfcodec.decode(data))


def test_draft_samples_the_field_at_exactly_the_asked_size(tiny_snf, decodes):
    im = Image.open(io.BytesIO(tiny_snf))
    assert im.draft("RGB", (13, 7)) == ("RGB", (0, 0, 13, 7))
    im.load()
    assert im.size == (13, 7) and decodes == [(13, 7)]
    assert np.array_equal(np.asarray(im), snfcodec.decode(tiny_snf, size=(13, 7)))
    assert im.draft("RGB", (5, 5)) is None  # already loaded: no effect, as Pillow documents


def test_draft_can_enlarge(tiny_snf):
    im = Image.open(io.BytesIO(tiny_snf))
    im.draft(None, (50, 45))
    assert np.array_equal(np.asarray(im), snfcodec.decode(tiny_snf, size=(50, 45)))


def test_thumbnail_samples_the_field_small_instead_of_decoding_full_size(tiny_snf, decodes):
    im = Image.open(io.BytesIO(tiny_snf))
    im.thumbnail((8, 8))
    assert im.size == (8, 8)
    assert decodes == [(16, 16)]  # Pillow drafts at reducing_gap (2) times the thumbnail, then resizes


def test_save_encodes_with_the_options_given_and_round_trips(tmp_path, photo32):
    path = tmp_path / "saved.snf"
    Image.fromarray(photo32).save(path, bpp=4.0, steps=30, seed=3, quality=90)  # quality: not ours, ignored
    expected = snfcodec.encode(photo32, bpp=4.0, steps=30, seed=3).data
    assert path.read_bytes() == expected
    with Image.open(path) as im:
        assert (im.format, im.mode, im.size) == ("SNF", "RGB", (32, 32))
        assert np.array_equal(np.asarray(im), snfcodec.decode(expected))


def test_save_converts_other_modes(tmp_path, photo32):
    path = tmp_path / "palette.snf"
    Image.fromarray(photo32).convert("P").save(path, bpp=4.0, steps=5)
    assert snfcodec.info(path)["layout"] == "RGB"


def test_save_refuses_bad_options(tmp_path, photo32):
    with pytest.raises(snfcodec.SnfInputError, match="effort"):
        Image.fromarray(photo32).save(tmp_path / "x.snf", effort="extreme")
    assert not (tmp_path / "x.snf").exists()  # Pillow removes a file it created for a failed save


@pytest.mark.parametrize("damage", ["bit", "truncate", "magic_only"])
def test_damaged_files_raise_pillows_error_with_the_readers_reason(tiny_snf, damage):
    data = bytearray(tiny_snf)
    if damage == "bit":
        data[len(data) // 2] ^= 0x10
        reason = "checksum mismatch"
    elif damage == "truncate":
        data = data[: len(data) - 9]
        reason = "truncated"
    else:
        data = data[:4]
        reason = "signature"
    with pytest.raises(UnidentifiedImageError, match=reason):
        Image.open(io.BytesIO(bytes(data)))


def test_audio_files_are_refused_with_a_clear_message():
    with pytest.raises(UnidentifiedImageError, match="holds audio, not an image"):
        Image.open(os.path.join(CONFORMANCE, "speech_mono_1500.snf"))


def _declaring(data: bytes, height: int, width: int) -> bytes:
    """The same one-tile network in a valid file whose header declares a larger canvas."""
    header, payload = container.read(data)
    assert header.tiling.num_tiles == 1
    tiling = TileLayout((height, width), (height, width), header.tiling.margin)
    return container.write(dataclasses.replace(header, tiling=tiling), payload)


def test_a_bomb_sized_header_is_refused_before_any_pixel_work(tiny_snf, decodes):
    bomb = _declaring(tiny_snf, 20_000, 20_000)
    assert snfcodec.info(bomb)["shape"] == [20_000, 20_000]
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))
    assert decodes == []


def test_the_bomb_limit_applies_to_draft_sizes(tiny_snf, decodes, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    im = Image.open(io.BytesIO(tiny_snf))
    with pytest.raises(Image.DecompressionBombError):
        im.draft("RGB", (200, 101))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        im.draft("RGB", (120, 100))
    assert any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)
    assert decodes == []


def test_the_decoders_own_limits_stay_in_force(tiny_snf, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    im = Image.open(io.BytesIO(tiny_snf))
    im.draft("RGB", (20_000, 20_000))  # 1.2e9 values: past the codec's max_samples
    with pytest.raises(OSError, match="more than the limit"):
        im.load()


def test_register_is_idempotent_and_names_the_extension(tiny_snf, tmp_path):
    snfcodec.pillow.register()
    assert Image.registered_extensions()[".snf"] == "SNF"
    assert Image.MIME["SNF"] == "image/x-snf"
    path = tmp_path / "a.snf"
    path.write_bytes(tiny_snf)
    with Image.open(path) as im:
        assert im.format == "SNF"


def test_the_codec_does_not_treat_snf_as_an_image_format_once_registered(tiny_snf, tmp_path):
    path = tmp_path / "a.snf"
    path.write_bytes(tiny_snf)
    with pytest.raises(snfcodec.SnfInputError, match="already a .snf file"):
        snfcodec.encode(path)
