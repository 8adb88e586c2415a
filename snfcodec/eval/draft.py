"""Is ``draft`` (sampling the field small) faster than a full decode and a resize, through Pillow?

    python -m snfcodec.eval.draft FILE.snf [--divisor 4] [--repeat 5]
    python -m snfcodec.eval.draft PHOTO.png [--bpp 1] [--steps 100]     # encodes it first

Times, through the Pillow plugin, the three ways a program gets a 1/divisor-size picture from a ``.snf`` file:
``load()`` at full size then ``resize`` (Lanczos), ``draft`` to the small size then ``load()``, and
``thumbnail`` (which drafts at twice the thumbnail's size, then resizes). Prints the median of ``--repeat`` runs
of each, and how far the small pictures are from one another in PSNR.
"""

from __future__ import annotations

import io
import statistics
import sys
import time

import click
import numpy as np
from PIL import Image

import snfcodec
import snfcodec.pillow  # noqa: F401  (registers the plugin)

from ..errors import SnfError
from ..media import SNF_EXTENSION
from .metrics import psnr_uint8


def _median_seconds(work, repeat: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def measure(data: bytes, divisor: int, repeat: int) -> dict:
    """Seconds (median) of each way to a (W/divisor, H/divisor) picture, and PSNRs between them."""
    with Image.open(io.BytesIO(data)) as im:
        W, H = im.size
    # Sides divisible by the divisor keep the aspect ratio, so thumbnail() lands on the same size as the others.
    small = (max(1, W // divisor), max(1, H // divisor))

    def full_then_resize():
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.asarray(im.resize(small, Image.LANCZOS))

    def draft():
        with Image.open(io.BytesIO(data)) as im:
            im.draft(im.mode, small)
            im.load()
            return np.asarray(im)

    def thumbnail():
        with Image.open(io.BytesIO(data)) as im:
            im.thumbnail(small, Image.LANCZOS)
            return np.asarray(im)

    out = {"size": [W, H], "small": list(small)}
    pictures = {}
    for name, work in (("full_then_resize", full_then_resize), ("draft", draft), ("thumbnail", thumbnail)):
        out[f"{name}_seconds"], pictures[name] = _median_seconds(work, repeat)
    out["psnr_draft_vs_resize"] = psnr_uint8(pictures["draft"], pictures["full_then_resize"])
    out["psnr_thumbnail_vs_resize"] = psnr_uint8(pictures["thumbnail"], pictures["full_then_resize"])
    return out


@click.command()
@click.argument("source", type=click.Path(dir_okay=False, exists=True))
@click.option("--divisor", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--repeat", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--bpp", type=float, default=1.0, show_default=True, help="Rate when SOURCE is an image to encode.")
@click.option("--steps", type=click.IntRange(min=0), default=100, show_default=True,
              help="Fitting steps when SOURCE is an image (decode time does not depend on them).")
def main(source, divisor, repeat, bpp, steps):
    """Time draft + load against a full decode + resize through the Pillow plugin."""
    try:
        if source.lower().endswith(SNF_EXTENSION):
            data = snfcodec.api.read_snf(source)
        else:
            result = snfcodec.encode(source, bpp=bpp, steps=steps)
            click.echo(f"encoded {source}: {result.bpp:.3f} bpp, {result.psnr:.2f} dB, {result.seconds:.1f} s")
            data = result.data
        r = measure(data, divisor, repeat)
    except SnfError as exc:
        click.echo(f"snfcodec.eval.draft: error: {exc}", err=True)
        sys.exit(1)
    (W, H), (w, h) = r["size"], r["small"]
    click.echo(f"{W}x{H} -> {w}x{h}, median of {repeat}:")
    click.echo(f"  load {W}x{H} + resize (Lanczos): {r['full_then_resize_seconds']:.3f} s")
    click.echo(f"  draft {w}x{h} + load:          {r['draft_seconds']:.3f} s  "
               f"({r['full_then_resize_seconds'] / r['draft_seconds']:.1f}x faster; "
               f"{r['psnr_draft_vs_resize']:.2f} dB from the resized picture)")
    click.echo(f"  thumbnail({w}, {h}):            {r['thumbnail_seconds']:.3f} s  "
               f"({r['psnr_thumbnail_vs_resize']:.2f} dB from the resized picture)")


if __name__ == "__main__":
    main()
