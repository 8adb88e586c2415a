"""Is sampling the field at 2× better than decoding at 1× and resizing? And are tile seams visible?

    python -m snfcodec.eval.upscale IMAGE... --out DIR [--factor 2] [--bpp 2.0] [--effort default]
        [--field auto|tiles|latent]

For each image I: L = I reduced by the factor (Lanczos, anti-aliased); L is encoded with snfcodec; against I we
compare (a) the field decoded at the factor, (b) snfcodec's 1× decode upscaled with bicubic and with Lanczos,
(c) L itself upscaled with bicubic (what plain resampling reaches without any coding loss). Also reports the
seam ratio of the field's decodes at 1×, the factor and 1.37× (of L's encode, or of an encode of I when L is a
single tile): raw, relative to the source resampled to the same grid ("excess"), and paired (``seams.py``: each
boundary against the same content line in the middle of a tile of a half-tile-shifted encode). Writes
upscale.csv, upscale.json and one labelled side-by-side crop PNG per image. A latent field (version 3) has no
tiles, so no seams to measure.
"""

from __future__ import annotations

import csv
import json
import os
import sys

import click
import numpy as np
from PIL import Image

import snfcodec

from ..errors import SnfError
from .. import presets
from ..media import read_image
from .crops import detail_region, labelled_strip
from .metrics import ms_ssim, psnr_uint8, seam_ratio
from .seams import paired_seam_ratio, shifted_source

SEAM_SCALES = (1.0, 2.0, 1.37)
CROP_SIDE = 96  # pixels of the original per panel


def _resize(pixels: np.ndarray, size: tuple[int, int], method) -> np.ndarray:
    im = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    return np.asarray(im.resize(size, method)).reshape(size[1], size[0], pixels.shape[2])


def evaluate(path: str, factor: int, bpp: float, effort: str, seed: int = 0,
             field: str = "auto") -> tuple[dict, Image.Image]:
    """Numbers for one image, and a labelled side-by-side crop (original | L bicubic | 1× + Lanczos | field)
    of its most detailed region."""
    original = read_image(path)
    H, W = (original.shape[0] // factor) * factor, (original.shape[1] // factor) * factor
    original = original[:H, :W]
    low = _resize(original, (W // factor, H // factor), Image.LANCZOS)
    result = snfcodec.encode(low, bpp=bpp, effort=effort, seed=seed, field=field)
    one = snfcodec.decode(result.data)
    candidates = {
        "field": snfcodec.decode(result.data, size=(W, H)),
        "decoded_bicubic": _resize(one, (W, H), Image.BICUBIC),
        "decoded_lanczos": _resize(one, (W, H), Image.LANCZOS),
        "low_bicubic": _resize(low, (W, H), Image.BICUBIC),
    }
    row = {"image": os.path.basename(path), "factor": factor, "bpp": result.bpp, "psnr_1x": result.psnr}
    for name, pixels in candidates.items():
        row[f"psnr_{name}"] = psnr_uint8(pixels, original)
        value, metric = ms_ssim(pixels, original)
        row[f"{metric}_{name}"] = value
    if snfcodec.info(result.data)["version"] < 3:
        _seams(row, result.data, original, low, bpp, effort, seed)
    row["field_beats_best_resize"] = row["psnr_field"] >= max(row["psnr_decoded_bicubic"],
                                                              row["psnr_decoded_lanczos"])
    side = min(CROP_SIDE, H, W)
    y0, x0 = detail_region(original, side)
    window = (slice(y0, y0 + side), slice(x0, x0 + side))
    labels = {"low_bicubic": "L + bicubic", "decoded_lanczos": "1x decode + Lanczos", "field": f"field at {factor}x"}
    strip = labelled_strip([("original", original[window])] + [
        (f"{labels[k]}\n{row[f'psnr_{k}']:.2f} dB", candidates[k][window]) for k in labels], zoom=2)
    return row, strip


def _seams(row: dict, data: bytes, original, low, bpp, effort, seed) -> None:
    """The seam ratios of a tiled field into ``row``."""
    # Seams need tile boundaries: when L fits in one tile, measure them on an encode of I itself. Natural images
    # differ a lot along any given line, so each ratio is divided by the same ratio of the source signal
    # resampled (Lanczos) to the same grid: 1.0 means the boundaries jump no more than the picture does there.
    seam_data, source = data, low
    if snfcodec.info(seam_data)["tiling"]["tiles"] == 1:
        seam_data, source = snfcodec.encode(original, bpp=bpp, effort=effort, seed=seed).data, original
    # That still leaves the fitting error along one line per axis, which varies from line to line too; the
    # paired measure compares each boundary with the same content in a tile's middle of a shifted encode.
    row["seam_source"] = "low" if source is low else "original"
    tile = tuple(snfcodec.info(seam_data)["tiling"]["tile"])
    shift = min(tile) // 2
    shifted = snfcodec.encode(shifted_source(source, shift), bpp=bpp, effort=effort, seed=seed).data
    samplers = [lambda crop, size, d=d: snfcodec.decode(d, crop=crop, size=size) for d in (seam_data, shifted)]
    for scale in SEAM_SCALES:
        decoded = snfcodec.decode(seam_data, scale=scale)
        size = (decoded.shape[1], decoded.shape[0])
        reference = source if size == (source.shape[1], source.shape[0]) else _resize(source, size, Image.LANCZOS)
        ratio = seam_ratio(decoded, source.shape[:2], tile)
        row[f"seam_ratio_{scale:g}x"] = ratio
        row[f"seam_excess_{scale:g}x"] = ratio / seam_ratio(reference, source.shape[:2], tile)
        row[f"seam_paired_{scale:g}x"] = paired_seam_ratio(*samplers, source.shape[:2], tile, shift, scale)


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--factor", type=click.IntRange(min=2), default=2, show_default=True)
@click.option("--bpp", type=float, default=2.0, show_default=True, help="Rate of the low-resolution encode.")
@click.option("--effort", type=click.Choice(presets.EFFORTS), default="default", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--field", type=click.Choice(["auto", "tiles", "latent"]), default="auto", show_default=True)
def main(images, out, factor, bpp, effort, seed, field):
    """Compare the field's upsampled decode with resampling, and measure tile seams."""
    os.makedirs(out, exist_ok=True)
    rows = []
    try:
        for path in images:
            row, strip = evaluate(path, factor, bpp, effort, seed, field)
            rows.append(row)
            name = os.path.splitext(os.path.basename(path))[0]
            strip.save(os.path.join(out, f"{name}_crops.png"))
            click.echo(f"{row['image']}: field {row['psnr_field']:.2f} dB | 1x+bicubic "
                       f"{row['psnr_decoded_bicubic']:.2f} | 1x+lanczos {row['psnr_decoded_lanczos']:.2f} | "
                       f"L+bicubic {row['psnr_low_bicubic']:.2f}" + ("" if "seam_source" not in row else
                       " | seam excess " + " ".join(f"{s:g}x {row[f'seam_excess_{s:g}x']:.3f}" for s in SEAM_SCALES)
                       + " | paired " + " ".join(f"{s:g}x {row[f'seam_paired_{s:g}x']:.3f}" for s in SEAM_SCALES)))
    except SnfError as exc:
        click.echo(f"snfcodec.eval.upscale: error: {exc}", err=True)
        sys.exit(1)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(os.path.join(out, "upscale.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    # Images under 161 px a side report SSIM, larger ones MS-SSIM: average each over the images that have it.
    means = {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys
             if k.startswith(("psnr", "seam_", "ssim", "ms_ssim")) and k != "seam_source"}
    with open(os.path.join(out, "upscale.json"), "w") as f:
        json.dump({"images": rows, "mean": means}, f, indent=2)
    click.echo("mean: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))


if __name__ == "__main__":
    main()
