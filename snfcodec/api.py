"""The Python API: thin wrappers that accept paths, bytes or arrays and call the codec core."""

from __future__ import annotations

import contextlib
import os
from typing import Iterable, Iterator

import numpy as np

from . import batch, codec, container
from .batch import BatchResult
from .codec import EncodeOptions, EncodeResult
from .errors import SnfError, SnfFormatError, SnfInputError
from .files import check_not_input, write_bytes_atomic
from .media import read_media

PathLike = str | os.PathLike


@contextlib.contextmanager
def _named(source):
    """Prefix errors about a file with its name (the message then says which file and what is wrong)."""
    try:
        yield
    except SnfError as exc:
        if not isinstance(source, (str, os.PathLike)) or str(exc).startswith(os.fspath(source)):
            raise
        raise type(exc)(f"{os.fspath(source)}: {exc}") from None


# No valid .snf file comes near this size (the network is capped at 2^26 parameters): refuse before reading.
MAX_FILE_BYTES = 1 << 30


def read_snf(source: PathLike | bytes | bytearray | memoryview) -> bytes:
    """The bytes of a ``.snf`` file given as a path or as bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    name = os.fspath(source)
    try:
        if os.path.getsize(name) > MAX_FILE_BYTES:
            raise SnfFormatError(f"{name}: larger than {MAX_FILE_BYTES} bytes, not a .snf file")
        with open(name, "rb") as f:
            return f.read()
    except OSError as exc:
        raise SnfInputError(f"{name}: cannot read: {exc.strerror}") from None


def encode(source: PathLike | np.ndarray, output: PathLike | None = None, *, bpp: float | None = None,
           kbps: float | None = None, psnr: float | None = None, effort: str = "default",
           steps: int | None = None, alpha: str | float | tuple[float, float] = "auto", lr: float | None = None,
           seed: int = 0, tile: int | None = None, device: str = "auto", max_seconds: float | None = None,
           progress: bool = False, sample_rate: int | None = None, prior: str | None = "auto",
           field: str = "auto", lmbda: float | None = None) -> EncodeResult:
    """Encode an image or a sound into ``.snf`` bytes.

    source: a media file path (image by extension, anything else as audio), an (H, W, C) uint8 image array,
    or an (N, C) float audio array in [-1, 1] together with ``sample_rate``.
    bpp (images, default 2.0) / kbps (audio, default 64): target rate of the whole file, which lands at or
    just under it. psnr: stop fitting once the unquantized field reaches it. effort/steps: the step budget.
    alpha: weight scaling ("auto", a number for the first and hidden layers, or a pair); 1.0 is plain SIREN.
    tile (images): side of the square tiles in pixels, one field each (default: 64, or 128 where 64×64 tiles
    would leave fields narrower than 10 at this rate; the image's size or more gives one field for the whole image).
    prior: "auto" starts from the learned prior shipped for the field's shape, where there is one, and codes the
    parameters as residuals from it (a version-2 file); None or "none": random initialisation (version 1).
    field (images): "tiles" (tiled SIRENs, versions 1–2), "latent" (latent grids, version 3) or "auto" (the tiled
    field where psnr, tile, device="cuda", prior="none", alpha or lr is given, else the one measured better at
    this rate and size); lmbda (latent field): the rate-distortion λ itself instead of a rate target.
    With ``output`` the bytes are also written there (atomically).
    """
    if output is not None:
        check_not_input(output, source)
    options = EncodeOptions(bpp=bpp, kbps=kbps, psnr=psnr, effort=effort, steps=steps, alpha=alpha, lr=lr,
                            seed=seed, tile=tile, device=device, max_seconds=max_seconds, progress=progress,
                            prior=prior, field=field, lmbda=lmbda)
    if isinstance(source, (str, os.PathLike)):
        with _named(source):
            media = read_media(source)
            if isinstance(media, np.ndarray):
                result = codec.encode_image(media, options)
            else:
                result = codec.encode_audio(*media, options)
    elif np.asarray(source).dtype == np.uint8:
        result = codec.encode_image(source, options)
    else:
        if sample_rate is None:
            raise SnfInputError("an audio array needs sample_rate=")
        result = codec.encode_audio(source, sample_rate, options)
    if output is not None:
        write_bytes_atomic(output, result.data)
    return result


def encode_many(sources: Iterable[PathLike], out_dir: PathLike | None = None, *, skip_existing: bool = False,
                cluster: str | None = None, jobs: int = 1, **options) -> Iterator[BatchResult]:
    """Encode many images or sounds; yields one :class:`~snfcodec.batch.BatchResult` per input as it completes.

    sources: files and folders (walked; media files by extension). With ``out_dir`` each input's ``.snf`` is
    written there atomically, mirroring the folders' relative paths; without it the bytes are in
    ``result.data``. Inputs of the same kind, size, channels and rate are fitted together as one batched model,
    with every per-file rule of :func:`encode` (rate control exact per file). skip_existing: leave inputs whose
    output exists (resumes an interrupted run). cluster: None (this process), "local" (a Ray cluster on this
    machine) or a Ray address; needs ``pip install "snfcodec[cluster]"``. jobs: without a cluster, worker
    processes on this machine that fit groups side by side, one thread each (1: this process; 0: one per CPU
    core; they are spawned, so a script calling this needs the ``if __name__ == "__main__":`` guard).
    options: as for :func:`encode` (bpp, kbps, psnr, effort, steps, alpha, lr, seed, tile, device,
    max_seconds). A bad input gives a result with ``status == "error"`` and a one-line ``error``; the others
    go on.
    """
    return batch.encode_many(sources, out_dir, skip_existing=skip_existing, cluster=cluster, jobs=jobs,
                              **options)


def decode(source: PathLike | bytes, *, scale: float | None = None, size: tuple[int, int] | None = None,
           crop: tuple[float, float, float, float] | None = None, sample_rate: int | None = None,
           max_samples: int = codec.DEFAULT_MAX_SAMPLES) -> np.ndarray:
    """Decode a ``.snf`` file (path or bytes).

    Images → (H, W, C) uint8; scale: output size factor; size: (width, height); crop: (x, y, w, h) region of
    the original canvas. Audio → (N, C) float32 in [-1, 1] at the original rate, or at ``sample_rate`` (the
    field is sampled at that rate); :func:`info` gives the original rate.
    """
    with _named(source):
        return codec.decode(read_snf(source), scale, size, crop, sample_rate, max_samples)


def info(source: PathLike | bytes) -> dict:
    """Everything in a ``.snf`` header as a dict, plus the file size and rate."""
    data = read_snf(source)
    with _named(source):
        header, _ = container.read(data)
    out = header.to_dict()
    out["bytes"] = len(data)
    if header.kind == container.KIND_IMAGE:
        out["bpp"] = 8 * len(data) / (header.shape[0] * header.shape[1])
    else:
        out["seconds"] = header.shape[0] / header.sample_rate
        out["kbps"] = 8 * len(data) / out["seconds"] / 1000
    return out
