"""How the encoder scales with the size of a photo: seconds per megapixel, the share of fitting, peak memory.

    python -m snfcodec.eval.scale PHOTO [--sizes 768x512,2048x1365,4000x3000] [--bpp 1] [--steps N]
                                  [--device cpu] [--out DIR]

Each size runs in a process of its own (so that its peak resident memory is its own): the photo is resized to
it (Lanczos), encoded, decoded at 1× and at 2×, and checked as :mod:`snfcodec.eval.device` checks. Prints one
line per size and writes scale.json with ``--out``. Without ``--steps`` the default effort's budget is used: a
12 MP photo then takes about an hour on a 2-core CPU.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import click
from PIL import Image

import snfcodec

from ..errors import SnfError
from ..media import read_image
from .device import _parse_sizes, check, resized


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB; Linux reports ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(photo: str, size: tuple[int, int], bpp: float, steps: int | None, device: str) -> dict:
    """Encode ``photo`` resized to ``size`` (W, H), decode at 1× and 2×: one row of the table."""
    W, H = size
    row, data = check(resized(Image.fromarray(read_image(photo).squeeze()), W, H), device, bpp, steps)
    row["encode_peak_rss_mb"] = peak_rss_mb()
    start = time.perf_counter()
    snfcodec.decode(data, scale=2)
    row["decode2x_seconds_cpu"] = time.perf_counter() - start
    row["peak_rss_mb"] = peak_rss_mb()
    row["seconds_per_megapixel"] = row["encode_seconds"] / row["megapixels"]
    row["fit_share"] = row["fit_seconds"] / row["encode_seconds"]
    return row


def _child(args: list) -> dict:
    """Run :func:`measure` in a fresh interpreter; its JSON row."""
    done = subprocess.run([sys.executable, "-m", "snfcodec.eval.scale", "--child", json.dumps(args)],
                          stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise click.ClickException(f"the run at {args[1][0]}x{args[1][1]} failed (exit status {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


@click.command()
@click.argument("photo", type=click.Path(dir_okay=False, exists=True), required=False)
@click.option("--sizes", default="768x512,2048x1365,4000x3000", show_default=True, callback=_parse_sizes)
@click.option("--bpp", type=float, default=1.0, show_default=True)
@click.option("--steps", type=click.IntRange(min=0), help="Step budget [default: the default effort's].")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="Also write scale.json here.")
@click.option("--child", hidden=True)
def main(photo, sizes, bpp, steps, device, out, child):
    """Seconds per megapixel, fitting share and peak memory of encodes at several sizes of one photo."""
    if child is not None:
        p, size, b, s, d = json.loads(child)
        try:
            click.echo(json.dumps(measure(p, tuple(size), b, s, d)))
        except SnfError as exc:
            click.echo(f"snfcodec.eval.scale: error: {exc}", err=True)
            sys.exit(1)
        return
    if photo is None:
        raise click.UsageError("give a PHOTO to resize to each size")
    rows = []
    for W, H in sizes:
        row = _child([photo, [W, H], bpp, steps, device])
        rows.append(row)
        ok = all(row["checks"].values())
        click.echo(f"{W}x{H} ({row['megapixels']:.2f} MP): {row['encode_seconds']:.1f} s "
                   f"({row['seconds_per_megapixel']:.1f} s/MP, fitting {100 * row['fit_share']:.1f} %), "
                   f"{row['steps']}+{row['qat_steps']} steps, {row['bpp']:.4f} bpp, {row['psnr']:.2f} dB, "
                   f"peak RSS {row['encode_peak_rss_mb']:.0f} MB encoding, {row['peak_rss_mb']:.0f} MB with the "
                   f"decodes; decode 1x {row['decode_seconds_cpu']:.2f} s, 2x {row['decode2x_seconds_cpu']:.2f} s; "
                   f"checks {'pass' if ok else 'FAIL ' + str(row['checks'])}")
    small = rows[0]["seconds_per_megapixel"]
    click.echo("seconds per megapixel relative to the first size: "
               + ", ".join(f"{r['seconds_per_megapixel'] / small:.2f}x" for r in rows))
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "scale.json"), "w") as f:
            json.dump({"photo": photo, "bpp": bpp, "steps": steps, "rows": rows}, f, indent=2)
    if not all(all(r["checks"].values()) for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
