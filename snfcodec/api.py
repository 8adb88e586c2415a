"""The Python API: thin wrappers that accept paths, bytes or arrays and call the codec core."""

from __future__ import annotations

import os

import numpy as np

from . import codec, container
from .codec import EncodeOptions, EncodeResult
from .errors import SnfInputError
from .files import check_not_input, write_bytes_atomic
from .media import read_image

PathLike = str | os.PathLike


def _read_snf(source: PathLike | bytes | bytearray | memoryview) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    name = os.fspath(source)
    try:
        with open(name, "rb") as f:
            return f.read()
    except OSError as exc:
        raise SnfInputError(f"{name}: cannot read: {exc.strerror}") from None


def encode(source: PathLike | np.ndarray, output: PathLike | None = None, *, bpp: float | None = None,
           psnr: float | None = None, effort: str = "default", steps: int | None = None,
           alpha: str | float | tuple[float, float] = "auto", lr: float | None = None, seed: int = 0,
           device: str = "auto", max_seconds: float | None = None, progress: bool = False) -> EncodeResult:
    """Encode an image (a path Pillow can read, or an (H, W, C) uint8 array) into ``.snf`` bytes.

    bpp: target rate of the whole file (default 2.0; the file lands at or just under it); psnr: stop fitting
    once the unquantized field reaches it; effort/steps: the step budget; alpha: weight scaling ("auto", a
    number applied to the first and hidden layers, or a pair); 1.0 is plain SIREN. With ``output`` the bytes
    are also written there (atomically).
    """
    if output is not None:
        check_not_input(output, source)
    pixels = read_image(source) if isinstance(source, (str, os.PathLike)) else source
    options = EncodeOptions(bpp=bpp, psnr=psnr, effort=effort, steps=steps, alpha=alpha, lr=lr, seed=seed,
                            device=device, max_seconds=max_seconds, progress=progress)
    result = codec.encode_image(pixels, options)
    if output is not None:
        write_bytes_atomic(output, result.data)
    return result


def decode(source: PathLike | bytes, *, scale: float | None = None, size: tuple[int, int] | None = None,
           crop: tuple[float, float, float, float] | None = None,
           max_samples: int = codec.DEFAULT_MAX_SAMPLES) -> np.ndarray:
    """Decode a ``.snf`` file (path or bytes) → (H, W, C) uint8 pixels.

    scale: output size factor; size: (width, height); crop: (x, y, w, h) region of the original canvas.
    """
    return codec.decode_image(_read_snf(source), scale=scale, size=size, crop=crop, max_samples=max_samples)


def info(source: PathLike | bytes) -> dict:
    """Everything in a ``.snf`` header as a dict, plus the file size and rate."""
    data = _read_snf(source)
    header, _ = container.read(data)
    out = header.to_dict()
    out["bytes"] = len(data)
    if header.kind == container.KIND_IMAGE:
        out["bpp"] = 8 * len(data) / (header.tiling.shape[0] * header.tiling.shape[1])
    return out
