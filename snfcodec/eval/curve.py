"""dB against encode seconds and steps for the latent field (version 3) at one rate: the effort levels' curve,
and the seed's weight scaling on it.

    python -m snfcodec.eval.curve IMAGE [--bpp 0.5] [--steps 300,600,2000] [--alphas "1,1;2,1"] [--out DIR]

Every point is a whole encode through the public API (``field="latent"``), so its seconds and dB are what a
user gets: training, the networks' quantization, the rate search and the decoded file's PSNR. The default step
counts are those of ``--effort fast``, ``default`` and ``slow``. α is the synthesis network's weight scaling
(first layer, hidden layers). Run alone on the machine: seconds are its seconds. Writes curve.csv, curve.json and
curve.png.
"""

from __future__ import annotations

import csv
import json
import os

import click

from .. import presets
from ..api import encode
from ..errors import SnfError
from ..media import read_image


def _alphas(ctx, param, value: str) -> list[tuple[float, float]]:
    try:
        pairs = [tuple(float(a) for a in item.split(",")) for item in value.split(";") if item.strip()]
    except ValueError:
        raise click.BadParameter(f"expected pairs like '1,1;2,1', not {value!r}") from None
    if not pairs or any(len(p) != 2 or min(p) <= 0 for p in pairs):
        raise click.BadParameter(f"expected positive pairs like '1,1;2,1', not {value!r}")
    return pairs


def _steps(ctx, param, value: str) -> list[int]:
    try:
        steps = [int(s) for s in value.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"expected step counts like '300,600', not {value!r}") from None
    if not steps or min(steps) < 1:
        raise click.BadParameter(f"expected positive step counts, not {value!r}")
    return steps


def measure(pixels, bpp: float, steps: int, alpha: tuple[float, float], seed: int = 0) -> dict:
    """One encode at ``steps`` and ``alpha``: the file's bpp and dB, and the seconds it took."""
    result = encode(pixels, bpp=bpp, steps=steps, alpha=alpha, field="latent", seed=seed)
    return {"alpha_first": alpha[0], "alpha_hidden": alpha[1], "steps": steps, "bpp": result.bpp,
            "psnr": result.psnr, "seconds": result.seconds, "fit_seconds": result.fit_seconds}


DEFAULT_STEPS = ",".join(str(presets.LATENT_STEPS[e]) for e in ("fast", "default", "slow"))


@click.command()
@click.argument("image", type=click.Path(dir_okay=False, exists=True))
@click.option("--bpp", type=click.FloatRange(min=0, min_open=True), default=0.5, show_default=True)
@click.option("--steps", "step_counts", default=DEFAULT_STEPS, show_default=True, callback=_steps,
              help="Step counts (default: the fast, default and slow efforts').")
@click.option("--alphas", default="1,1;2,1", show_default=True, callback=_alphas,
              help="Weight scalings (first, hidden) separated by ';'.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="curve-out", show_default=True)
def main(image, bpp, step_counts, alphas, seed, out):
    try:
        pixels = read_image(image)
        os.makedirs(out, exist_ok=True)
        rows = []
        for alpha in alphas:
            for steps in step_counts:
                row = dict(measure(pixels, bpp, steps, alpha, seed), image=os.path.basename(image))
                rows.append(row)
                click.echo(f"α={alpha[0]:g}:{alpha[1]:g} {steps:>6} steps: {row['bpp']:.4f} bpp "
                           f"{row['psnr']:.2f} dB in {row['seconds']:.1f} s")
    except SnfError as exc:
        raise click.ClickException(str(exc)) from None
    with open(os.path.join(out, "curve.json"), "w") as f:
        json.dump(rows, f, indent=1)
    with open(os.path.join(out, "curve.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, os.path.join(out, "curve.png"), bpp)
    click.echo(f"wrote {out}/curve.csv, curve.json, curve.png")


def plot(rows: list[dict], path: str, bpp: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for alpha in sorted({(r["alpha_first"], r["alpha_hidden"]) for r in rows}):
        mine = sorted((r for r in rows if (r["alpha_first"], r["alpha_hidden"]) == alpha), key=lambda r: r["steps"])
        label = f"α = {alpha[0]:g}:{alpha[1]:g}"
        axes[0].plot([r["seconds"] for r in mine], [r["psnr"] for r in mine], "o-", label=label)
        axes[1].plot([r["steps"] for r in mine], [r["psnr"] for r in mine], "o-", label=label)
    for ax, xlabel in zip(axes, ("encode seconds", "steps")):
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"PSNR (dB) at {bpp:g} bpp")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
