import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from snfcodec.errors import SnfInputError
from snfcodec.media import read_image, write_image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bomb(width, height):
    """A tiny PNG whose header declares a huge size: a decompression-bomb shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b""))
            + _chunk(b"IEND", b""))


@pytest.mark.parametrize("content,match", [
    (b"", "not a readable image"),
    (b"hello, I am not an image", "not a readable image"),
    (_png_bomb(100_000, 100_000), "more pixels than allowed"),
    (_png_bomb(9000, 9000), "more than"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, match):
    path = tmp_path / "input.png"
    path.write_bytes(content)
    with pytest.raises(SnfInputError, match=match) as info:
        read_image(path)
    assert "input.png" in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(SnfInputError, match="no such file"):
        read_image(tmp_path / "nope.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files(tmp_path, photo32, fmt):
    path = tmp_path / f"t.{fmt.lower()}"
    Image.fromarray(photo32).save(path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SnfInputError, match="t."):
        read_image(path)


def test_modes_are_converted_sensibly(tmp_path, photo32):
    # 16-bit grayscale: scaled to 8 bits, one channel.
    a16 = (np.arange(64 * 4, dtype=np.uint16).reshape(4, 64) * 257)
    Image.fromarray(a16).save(tmp_path / "g16.png")
    g = read_image(tmp_path / "g16.png")
    assert g.shape == (4, 64, 1) and g.max() == 255 and g.min() == 0
    # CMYK → RGB.
    Image.fromarray(photo32).convert("CMYK").save(tmp_path / "c.jpg")
    assert read_image(tmp_path / "c.jpg").shape == (32, 32, 3)
    # Palette with transparency → RGBA.
    p = Image.fromarray(photo32).convert("P")
    p.info["transparency"] = 0
    p.save(tmp_path / "p.png", transparency=0)
    assert read_image(tmp_path / "p.png").shape == (32, 32, 4)
    # 1x1 images are read (whether they can be encoded is the codec's business).
    Image.new("RGB", (1, 1), (1, 2, 3)).save(tmp_path / "one.png")
    assert read_image(tmp_path / "one.png").tolist() == [[[1, 2, 3]]]


def test_animated_input_contributes_its_first_frame(tmp_path):
    frames = [Image.new("L", (8, 8), v) for v in (10, 200, 90)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    out = read_image(tmp_path / "a.gif")
    assert out.shape[:2] == (8, 8) and int(np.median(out)) == 10


def test_write_follows_extension_and_composites_alpha_for_jpeg(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent → white in a JPEG
    write_image(tmp_path / "x.jpg", rgba)
    with Image.open(tmp_path / "x.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB"
        assert np.asarray(im).min() > 240
    write_image(tmp_path / "x.webp", rgba)
    with Image.open(tmp_path / "x.webp") as im:
        assert im.format == "WEBP"
    with pytest.raises(SnfInputError, match="extension"):
        write_image(tmp_path / "x.unknown", rgba)
