"""Pillow plugin: ``Image.open("x.snf")``, ``im.draft(mode, size)`` at any size, ``im.save("x.snf", bpp=1.0)``.

    import snfcodec.pillow          # registers on import (or call snfcodec.pillow.register())
    from PIL import Image
    im = Image.open("photo.snf")    # mode and size from the header; nothing decoded yet
    im.draft("RGB", (300, 200))     # optional: load() samples the field at exactly 300x200
    im.save("copy.snf", bpp=1.0)    # encoder options pass through as save parameters

Opening reads and checks the whole file (header and CRC), so a damaged file fails at ``Image.open`` with
Pillow's ``UnidentifiedImageError`` carrying the reader's reason; pixels are sampled on ``load()``. A neural field
has no native resolution, so ``draft`` is not limited to JPEG's 1/2, 1/4, 1/8: any size is sampled directly, and
``thumbnail`` (which drafts at twice the thumbnail's size) skips the full-size decode. Pillow's
decompression-bomb limit applies to the declared size (in ``Image.open``) and to every draft size; the decoder's
own output and work limits stay in force at ``load()``.

``Image.save`` truncates an existing file before the plugin runs (Pillow's behaviour, not the codec's); use
:func:`snfcodec.encode` with an output path for atomic writes.
"""

from __future__ import annotations

import dataclasses
from typing import IO

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from . import codec, container
from .api import MAX_FILE_BYTES
from .errors import SnfError
from .media import SNF_EXTENSION, to_layout

FORMAT = "SNF"
MIME = "image/x-snf"
# Encoder options a save call may pass (``im.save(f, bpp=1.0, effort="fast")``); Pillow's convention is that
# a format ignores parameters it does not use, and so does this one.
SAVE_OPTIONS = tuple(f.name for f in dataclasses.fields(codec.EncodeOptions) if f.name != "kbps")


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == container.MAGIC


def _read_all(fp: IO[bytes], name: str) -> bytes:
    data = fp.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise UnidentifiedImageError(f"cannot identify image file {name!r}: larger than {MAX_FILE_BYTES} bytes, "
                                     "not a .snf file")
    return data


class SnfImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "Sinusoidal neural field"

    def _open(self) -> None:
        name = self.filename if isinstance(self.filename, str) and self.filename else "<stream>"
        try:
            header, _ = container.read(_read_all(self.fp, name))
        except SnfError as exc:
            # Raised as-is (not SyntaxError, which Image.open swallows) so that the reader's reason survives.
            raise UnidentifiedImageError(f"cannot identify image file {name!r}: {exc}") from None
        if header.kind != container.KIND_IMAGE:
            raise UnidentifiedImageError(
                f"{name}: this .snf file holds {container.KIND_NAMES[header.kind]}, not an image; decode it with "
                "snfcodec.decode() or `snfcodec decode`")
        self._mode = container.IMAGE_LAYOUTS[header.layout_code]
        height, width = header.shape
        self._size = (width, height)
        self.info["snf_parameters"] = header.parameters
        self.tile = [ImageFile._Tile(FORMAT, (0, 0) + self.size, 0, ())]

    def draft(self, mode: str | None, size: tuple[int, int] | None):
        """Make ``load()`` sample the field at exactly ``size`` (width, height). The mode stays the file's."""
        if size is None or len(self.tile) != 1:  # no size asked for, or already loaded
            return None
        width, height = (int(v) for v in size)
        if width < 1 or height < 1:
            raise ValueError(f"draft size must be positive, got {width}x{height}")
        Image._decompression_bomb_check((width, height))
        self._size = (width, height)
        self.tile = [ImageFile._Tile(FORMAT, (0, 0, width, height), 0, ())]
        return self.mode, (0, 0, width, height)


class _SnfDecoder(ImageFile.PyDecoder):
    """Samples the whole field at the tile's size in one call (the codec bands the work internally)."""

    _pulls_fd = True

    def decode(self, buffer) -> tuple[int, int]:
        assert self.fd is not None
        self.fd.seek(0)
        data = _read_all(self.fd, "<stream>")
        try:
            pixels = codec.decode_image(data, size=(self.state.xsize, self.state.ysize))
        except SnfError as exc:
            raise OSError(f"cannot decode .snf image: {exc}") from None
        self.set_as_raw(pixels.tobytes())
        return -1, 0


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    options = {k: v for k, v in im.encoderinfo.items() if k in SAVE_OPTIONS}
    pixels = np.asarray(to_layout(im))
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    result = codec.encode_image(pixels, codec.EncodeOptions(**options))
    fp.write(result.data)


def register() -> None:
    """Register the ``.snf`` format with Pillow: open, accept (magic bytes), save, extension, MIME type."""
    Image.register_open(FORMAT, SnfImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, SNF_EXTENSION)
    Image.register_mime(FORMAT, MIME)
    Image.register_decoder(FORMAT, _SnfDecoder)


register()
