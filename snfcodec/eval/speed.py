"""Steps and seconds to a target PSNR, plain SIREN (α = 1) against weight scaling, each at its best learning rate.

    python -m snfcodec.eval.speed IMAGE... [--preset codec|paper] [--target-psnr 28] [--bpp 2]
                                  [--alphas 1,auto] [--lrs 3e-4,1e-3,3e-3] [--steps 1000] [--width 256] [--out DIR]

``--preset codec`` fits the network and tiling ``snfcodec encode --bpp`` would use; ``--preset paper`` fits the
paper's network (one field over the whole grayscale image, width 256 or ``--width``, 3 sine layers). Every
configuration runs with the same seed and data in the same process; each α is credited with its best learning
rate from the grid (fewest steps to the target, then highest final PSNR). Writes speed.json, speed.csv and speed.png.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import replace

import click
import numpy as np
import torch

from .. import presets
from ..codec import image_architecture
from ..field import BatchedSiren, FieldConfig
from ..fit import FitOptions, Problem, fit
from ..grid import SamplePlan, TileLayout, pixel_centres
from ..media import read_image

PAPER_WIDTH = 256


def architecture(pixels: np.ndarray, preset: str, bpp: float, width: int = PAPER_WIDTH) -> presets.Architecture:
    H, W, C = pixels.shape
    if preset == "paper":
        return presets.Architecture(FieldConfig(2, C, width, 3), TileLayout((H, W), (H, W), (0, 0)))
    return image_architecture(H, W, C, bpp)


def run_one(pixels: np.ndarray, arch: presets.Architecture, alpha: tuple[float, float], lr: float, steps: int,
            target: float, seed: int = 0) -> dict:
    """One fit, full budget (no early stop, so curves are comparable): steps/seconds to ``target``."""
    H, W, C = pixels.shape
    config = replace(arch.field, alpha_first=alpha[0], alpha_hidden=alpha[1])
    model = BatchedSiren(config, arch.tiling.num_tiles, torch.Generator().manual_seed(seed))
    plan = SamplePlan(arch.tiling, [pixel_centres(H), pixel_centres(W)])
    problem = Problem(plan, torch.from_numpy(pixels.reshape(H * W, C).astype(np.float32) / 127.5 - 1),
                      torch.device("cpu"))
    start = time.perf_counter()
    report = fit(model, problem, FitOptions(steps, lr))
    seconds = time.perf_counter() - start
    reached = next((s for s, p in report.curve if p >= target), None)
    per_step = seconds / max(1, report.steps)
    return {"alpha_first": alpha[0], "alpha_hidden": alpha[1], "lr": lr, "steps_to_target": reached,
            "seconds_to_target": None if reached is None else reached * per_step, "seconds_per_step": per_step,
            "final_psnr": report.psnr, "params": arch.params, "curve": [p for _, p in report.curve]}


def best(runs: list[dict]) -> dict:
    """Fewest steps to the target (runs that never reach it last), then highest final PSNR."""
    return min(runs, key=lambda r: (r["steps_to_target"] is None, r["steps_to_target"] or 0, -r["final_psnr"]))


def _alpha(text: str, config: FieldConfig) -> tuple[float, float]:
    if text == "auto":
        return presets.auto_alpha(config)
    parts = [float(v) for v in text.split(":")]
    return (parts[0], parts[-1])


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--preset", type=click.Choice(["codec", "paper"]), default="codec", show_default=True)
@click.option("--target-psnr", type=float, default=28.0, show_default=True)
@click.option("--bpp", type=float, default=2.0, show_default=True, help="Rate that sizes the codec preset.")
@click.option("--alphas", default="1,auto", show_default=True,
              help="Comma-separated α values: a number, first:hidden, or auto.")
@click.option("--lrs", default="3e-4,1e-3,3e-3", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--gray", is_flag=True, help="Convert images to grayscale (the paper's setting).")
@click.option("--size", type=click.IntRange(min=8), help="Resize images to SIZE×SIZE first.")
@click.option("--width", type=click.IntRange(min=1), default=PAPER_WIDTH, show_default=True,
              help="Width of the paper preset's field (ignored by the codec preset).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="speed-out", show_default=True)
def main(images, preset, target_psnr, bpp, alphas, lrs, steps, gray, size, width, seed, out):
    """Measure how many steps weight scaling saves over plain SIREN."""
    from PIL import Image

    os.makedirs(out, exist_ok=True)
    lr_grid = [float(v) for v in lrs.split(",")]
    results = []
    for path in images:
        pixels = read_image(path)
        if gray or size:
            im = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
            im = im.convert("L") if gray else im
            im = im.resize((size, size), Image.LANCZOS) if size else im
            pixels = np.asarray(im).reshape(im.size[1], im.size[0], -1)
        arch = architecture(pixels, preset, bpp, width)
        entry = {"image": os.path.basename(path), "preset": preset, "shape": list(pixels.shape),
                 "tiles": arch.tiling.num_tiles, "width": arch.field.width, "params": arch.params, "alphas": {}}
        for text in alphas.split(","):
            alpha = _alpha(text, arch.field)
            runs = [run_one(pixels, arch, alpha, lr, steps, target_psnr, seed) for lr in lr_grid]
            for r in runs:
                click.echo(f"{entry['image']} α={alpha[0]:g}:{alpha[1]:g} lr={r['lr']:g}: steps to "
                           f"{target_psnr:g} dB {r['steps_to_target']}, final {r['final_psnr']:.2f} dB, "
                           f"{1000 * r['seconds_per_step']:.1f} ms/step")
            entry["alphas"][text] = {"alpha": list(alpha), "runs": runs, "best": best(runs)}
        bests = {k: v["best"]["steps_to_target"] for k, v in entry["alphas"].items()}
        keys = list(bests)
        if len(keys) >= 2 and bests[keys[0]] and bests[keys[1]]:
            entry["speedup_steps"] = bests[keys[0]] / bests[keys[1]]
            click.echo(f"{entry['image']}: {keys[0]} needs {bests[keys[0]]} steps, {keys[1]} {bests[keys[1]]}: "
                       f"{entry['speedup_steps']:.2f}x")
        results.append(entry)
    _write(out, results, target_psnr)


def _write(out: str, results: list[dict], target: float) -> None:
    with open(os.path.join(out, "speed.json"), "w") as f:
        json.dump({"target_psnr": target, "results": results}, f)
    with open(os.path.join(out, "speed.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "preset", "tiles", "width", "params", "alpha", "alpha_first", "alpha_hidden", "lr",
                    "steps_to_target", "seconds_to_target", "seconds_per_step", "final_psnr", "best_for_alpha"])
        for e in results:
            for key, a in e["alphas"].items():
                for r in a["runs"]:
                    w.writerow([e["image"], e["preset"], e["tiles"], e["width"], e["params"], key,
                                r["alpha_first"], r["alpha_hidden"], r["lr"], r["steps_to_target"],
                                r["seconds_to_target"], r["seconds_per_step"], r["final_psnr"], r is a["best"]])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), dpi=110, squeeze=False)
    for ax, e in zip(axes[0], results):
        for key, a in e["alphas"].items():
            b = a["best"]
            ax.plot(b["curve"], label=f"α {key} ({b['alpha_first']:g}:{b['alpha_hidden']:g}), lr {b['lr']:g}")
        ax.axhline(target, color="gray", linestyle=":", linewidth=1)
        ax.set_title(f"{e['image']} ({e['preset']}, {e['params']} params)", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("training PSNR (dB)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "speed.png"))
    plt.close(fig)


if __name__ == "__main__":
    main()
