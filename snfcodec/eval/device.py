"""End-to-end check of the encoder on an accelerator: encode there, decode on the CPU, same file rules.

    python -m snfcodec.eval.device [--device cuda] [--sizes 768x512,4000x3000] [--bpp 1] [--steps N]
                                   [--field auto|tiles|latent] [--effort E] [--photo PATH] [--out DIR]

For each size, a photo (``--photo``, default the shipped ``samples/astronaut.png``) is resized to it (Lanczos)
and encoded on ``--device``; the file is then decoded on the CPU, as every decode is, twice. Checks: the file
parses, lands at or under the rate, decodes to the same bytes twice, and its PSNR is the one the encoder
reported. Prints seconds, steps per second and photos per minute; writes device.json with ``--out``.
``--field latent`` checks the version-3 latent field (on a GPU only when named: "auto" gives a CUDA fit the tiled
field, the one measured there).
Fitting runs in bounded chunks (:meth:`snfcodec.fit.Problem.backward`), so a 12 MP photo fits in a few GB; on a
2-core CPU machine use small ``--sizes`` and few ``--steps`` (the tests run it that way), or
:mod:`snfcodec.eval.scale` for the CPU's numbers.
"""

from __future__ import annotations

import json
import os
import sys
import time

import click
import numpy as np
import torch
from PIL import Image

import snfcodec

from ..codec import psnr_uint8, resolve_device
from ..errors import SnfError
from ..media import read_image

DEFAULT_PHOTO = os.path.join(os.path.dirname(__file__), "..", "..", "samples", "astronaut.png")


def _parse_sizes(ctx, param, value):
    try:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in value.split(",")]
    except ValueError:
        sizes = []
    if not sizes or any(len(s) != 2 or min(s) < 8 for s in sizes):
        raise click.BadParameter(f"expected WxH[,WxH...] with sides of at least 8, got {value!r}")
    return sizes


def resized(source: Image.Image, W: int, H: int) -> np.ndarray:
    """``source`` resized to W×H (Lanczos) → (H, W, C) uint8, contiguous."""
    return np.ascontiguousarray(np.asarray(source.resize((W, H), Image.LANCZOS)).reshape(H, W, -1))


def check(pixels: np.ndarray, device: str, bpp: float, steps: int | None, field: str = "auto",
          effort: str = "default") -> tuple[dict, bytes]:
    """Encode ``pixels`` on ``device``, decode on the CPU twice → (the numbers and checks of one photo, the file)."""
    H, W = pixels.shape[:2]
    result = snfcodec.encode(pixels, bpp=bpp, steps=steps, device=device, field=field, effort=effort)
    start = time.perf_counter()
    first = snfcodec.decode(result.data)
    decode_seconds = time.perf_counter() - start
    second = snfcodec.decode(result.data)
    info = snfcodec.info(result.data)
    work = result.steps + result.qat_steps
    return {
        "size": [W, H], "megapixels": W * H / 1e6, "device": result.device, "version": info["version"],
        "bytes": result.bytes,
        "bpp": result.bpp, "psnr": result.psnr, "encode_seconds": result.seconds,
        "fit_seconds": result.fit_seconds, "steps": result.steps,
        "qat_steps": result.qat_steps, "steps_per_second": work / result.seconds,
        "photos_per_minute": 60.0 / result.seconds, "decode_seconds_cpu": decode_seconds,
        "checks": {
            "parses": info["shape"] == [H, W],
            "rate_at_or_under_target": result.bpp <= bpp,
            "decode_deterministic": first.tobytes() == second.tobytes(),
            "psnr_as_reported": abs(psnr_uint8(first, pixels) - result.psnr) < 1e-9,
        },
    }, result.data


@click.command()
@click.option("--device", type=click.Choice(["cuda", "cpu", "auto"]), default="cuda", show_default=True)
@click.option("--sizes", default="768x512,4000x3000", show_default=True, callback=_parse_sizes)
@click.option("--bpp", type=float, default=1.0, show_default=True)
@click.option("--steps", type=click.IntRange(min=0), help="Step budget [default: the effort's].")
@click.option("--field", type=click.Choice(["auto", "tiles", "latent"]), default="auto", show_default=True)
@click.option("--effort", type=click.Choice(["fast", "default", "slow", "placebo"]), default="default",
              show_default=True)
@click.option("--photo", type=click.Path(dir_okay=False, exists=True), default=DEFAULT_PHOTO,
              help="Photo resized to each size [default: samples/astronaut.png].")
@click.option("--out", type=click.Path(file_okay=False), help="Also write device.json here.")
def main(device, sizes, bpp, steps, field, effort, photo, out):
    """Check and time the encoder on a device; decode on the CPU."""
    try:
        name = str(resolve_device(device))
        card = torch.cuda.get_device_name(0) if name == "cuda" else "CPU"
        source = Image.fromarray(read_image(photo).squeeze())
        rows = []
        for W, H in sizes:
            row = check(resized(source, W, H), device, bpp, steps, field, effort)[0]
            rows.append(row)
            ok = all(row["checks"].values())
            click.echo(f"{W}x{H} v{row['version']} on {card}: {row['encode_seconds']:.1f} s "
                       f"(fitting {row['fit_seconds']:.1f}), {row['steps']}+{row['qat_steps']} steps, "
                       f"{row['steps_per_second']:.1f} steps/s, {row['photos_per_minute']:.2f} photos/min, "
                       f"{row['bpp']:.4f} bpp, {row['psnr']:.2f} dB; CPU decode {row['decode_seconds_cpu']:.2f} s; "
                       f"checks {'pass' if ok else 'FAIL ' + str(row['checks'])}")
    except SnfError as exc:
        click.echo(f"snfcodec.eval.device: error: {exc}", err=True)
        sys.exit(1)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "device.json"), "w") as f:
            json.dump({"device": card, "rows": rows}, f, indent=2)
    if not all(all(r["checks"].values()) for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
