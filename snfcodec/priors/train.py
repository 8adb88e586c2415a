"""Learn the image priors from a folder of photos: ``python -m snfcodec.priors.train CORPUS_DIR --out DIR``.

What is learned is the first layer of the field, the one set of frequencies and phases every tile of a file
starts from (the hidden and output layers keep their random, per-tile initialisation: ``Prior.spread``). It is
fitted *jointly*: random crops of the corpus, each cut into the codec's tiles, all fitted at once with the
codec's objective, step budget, learning rate and sub-grid steps, every tile with its own hidden layers but one
shared first layer. The loop is its own (``fit.fit`` has no tied parameters) and so is its warm-up-times-cosine
learning-rate curve, close to but not the same as ``fit.fit``'s: the shipped priors were trained with it. A first
layer learned this way serves the ensemble of tiles; averaging the first layers that tiles fitted on their own
reach (Reptile) measured worse than a random one (docs/priors.md). The first layer moves little when a file is
fitted from it, so its residuals cost few bits.

One prior per (bpp, photo size) given: the field shape and tiling the presets choose there. Fixed seed: the same
corpus and arguments give the same priors (on the same machine and torch build).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import click
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .. import codec, presets
from ..errors import SnfInputError
from ..field import BatchedSiren
from ..fit import Problem, psnr_from_mse
from ..grid import SamplePlan, pixel_grid
from ..media import image_extension_ok, read_image
from . import MANIFEST, Prior, read, save

SHARED = (0, 1)  # tensors learned (first layer's weights and biases); the others start random in every tile


def corpus_photos(folder: str, short_side: int) -> tuple[list[np.ndarray], list[str]]:
    """Every RGB photo under ``folder`` (sorted), scaled so that its short side is ``short_side`` pixels: the
    scale of the material the presets are chosen for (768×512)."""
    names = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if image_extension_ok(f))
    photos, used = [], []
    for name in names:
        pixels = read_image(name)
        if pixels.shape[2] != 3:
            continue
        im = Image.fromarray(pixels)
        s = short_side / min(im.size)
        photos.append(np.asarray(im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))),
                                           Image.Resampling.LANCZOS)))
        used.append(os.path.relpath(name, folder))
    return photos, used


def random_crops(photos: list[np.ndarray], count: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """(count, size·size, 3) float32 crops in [-1, 1], each from a photo drawn at random."""
    out = []
    for _ in range(count):
        p = photos[rng.integers(len(photos))]
        y, x = rng.integers(p.shape[0] - size + 1), rng.integers(p.shape[1] - size + 1)
        out.append(torch.from_numpy(p[y:y + size, x:x + size].reshape(-1, 3).astype(np.float32) / 127.5 - 1.0))
    return torch.stack(out)


def train_image_prior(photos: list[np.ndarray], bpp: float, size: tuple[int, int], prior_id: int, crops: int,
                      crop: int, steps: int | None, seed: int, progress: bool = True,
                      alpha_first: float | None = None) -> Prior:
    """The prior for RGB photos of ``size`` (height, width) at ``bpp``: the presets' field and tiling there,
    its shared first layer fitted jointly to ``crops`` random crops of ``crop``² pixels (see the module),
    starting from the weight-scaled initialisation (α_first: the presets' choice unless given)."""
    arch = codec.image_architecture(size[0], size[1], 3, bpp)
    alpha = presets.auto_alpha(arch.field)
    alpha = alpha if alpha_first is None else (float(alpha_first), alpha[1])
    config = dataclasses.replace(arch.field, alpha_first=alpha[0], alpha_hidden=alpha[1])
    tile = arch.tiling.tile[0]
    crop = max(crop, tile)
    layout = dataclasses.replace(arch.tiling, shape=(crop, crop))
    rng = np.random.default_rng(seed)
    if any(min(p.shape[:2]) < crop for p in photos):
        raise SnfInputError(f"a corpus photo is smaller than the {crop}-pixel crops; use larger photos")
    problem = Problem(SamplePlan(layout, [pixel_grid(crop)] * 2), random_crops(photos, crops, crop, rng),
                      torch.device("cpu"), presets.GRADIENT_WEIGHT[2])
    generator = torch.Generator().manual_seed(seed)
    start = BatchedSiren(config, 1, generator)
    start.wrap_phases()
    model = BatchedSiren(config, crops * layout.num_tiles, generator)
    shared = [torch.nn.Parameter(start.tensors()[k].detach().clone()) for k in SHARED]
    own = [t for k, t in enumerate(model.tensors()) if k not in SHARED]
    steps = steps if steps is not None else presets.effort_steps(config)["default"]
    lr = presets.auto_lr(config, alpha)
    optimizer = torch.optim.Adam(shared + own, lr=lr)
    warm = max(1, steps // 50)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm) * (
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))
    subgrids = problem.subgrids(presets.fit_stride(config))
    strided = int(0.9 * steps) if subgrids else 0
    n = crops * layout.num_tiles
    began = time.perf_counter()
    bar = tqdm(range(steps + 1), desc=f"prior {bpp:g} bpp", disable=not progress, unit="step")
    for step in bar:
        on = subgrids[rng.integers(len(subgrids))] if step < strided else problem
        tensors = [shared[SHARED.index(k)].expand(n, -1, -1) if k in SHARED else t
                   for k, t in enumerate(model.tensors())]
        optimizer.zero_grad(set_to_none=True)
        _, mse = on.backward(model, tensors)
        bar.set_postfix(psnr=f"{psnr_from_mse(float(mse.mean())):.2f}dB", refresh=False)
        if step < steps:
            optimizer.step()
            schedule.step()
    with torch.no_grad():
        start.weights[0].copy_(shared[0])
        start.biases[0].copy_(shared[1])
        start.wrap_phases()
    first = [t.detach()[0].numpy().astype(np.float32) for t in start.tensors()]
    tensors = tuple(first[k] if k in SHARED else np.zeros_like(first[k]) for k in range(len(first)))
    spread = tuple(0.0 if k in SHARED else 1.0 for k in range(len(first)))
    info = {"bpp": bpp, "size": list(size), "tile": list(arch.tiling.tile), "crops": crops, "crop": crop,
            "steps": steps, "lr": lr, "seed": seed, "final_psnr": round(psnr_from_mse(float(mse.mean())), 3),
            "seconds": round(time.perf_counter() - began, 1)}
    name = f"image-rgb-w{config.width}-t{tile}"
    return Prior(prior_id, name, config, tensors, spread, tuple(arch.tiling.tile), info)


@click.command()
@click.argument("corpus", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="folder to write priors.json / priors.npz into (snfcodec/priors for the shipped set)")
@click.option("--bpp", "rates", multiple=True, type=float, default=(0.25, 0.5, 1.0, 2.0), show_default=True,
              help="rates to learn a prior for (the presets' field at each)")
@click.option("--size", default="768x512", show_default=True, help="photo size WxH the presets are asked about")
@click.option("--short-side", default=512, show_default=True, help="corpus photos are scaled to this short side")
@click.option("--crops", default=16, show_default=True, help="random crops fitted jointly per prior")
@click.option("--crop", default=256, show_default=True, help="crop side in pixels")
@click.option("--steps", type=int, default=None, help="fitting steps (default: the presets' default effort)")
@click.option("--seed", default=0, show_default=True)
@click.option("--alpha-first", type=click.FloatRange(min=0, min_open=True), default=None,
              help="α of the first layer the training starts from [default: the presets' choice]")
@click.option("--merge/--replace", default=True, show_default=True,
              help="keep the priors already in --out for other shapes")
def main(corpus, out_dir, rates, size, short_side, crops, crop, steps, seed, alpha_first, merge):
    """Learn one image prior per rate from the photos in CORPUS and write them to --out."""
    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{size!r} is not WxH") from None
    began = time.perf_counter()
    photos, names = corpus_photos(corpus, short_side)
    if not photos:
        raise click.UsageError(f"{corpus}: no RGB photo found")
    kept = list(read(out_dir)) if merge and (Path(out_dir) / MANIFEST).is_file() else []
    for i, bpp in enumerate(sorted(set(rates))):
        try:
            prior = train_image_prior(photos, bpp, (h, w), 0, crops, crop, steps, seed + i,
                                      alpha_first=alpha_first)
        except SnfInputError as exc:
            raise click.ClickException(str(exc)) from None
        prior.info["corpus"] = names
        prior = dataclasses.replace(prior, id=max((p.id for p in kept), default=0) + 1)
        kept = [p for p in kept if not p.fits(prior.config, prior.tile)] + [prior]
        click.echo(f"{prior.name} (#{prior.id}, {prior.checksum:08x}): {bpp:g} bpp, {prior.info['steps']} steps on "
                   f"{crops} crops, joint fit {prior.info['final_psnr']} dB, {prior.info['seconds']} s")
    save(kept, Path(out_dir))
    click.echo(f"{len(set(rates))} priors from {len(photos)} photos written to {out_dir} in "
               f"{time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
