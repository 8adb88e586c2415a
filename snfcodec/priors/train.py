"""Learn the priors from a folder of photos and speech: ``python -m snfcodec.priors.train CORPUS_DIR --out DIR``.

What is learned is the first layer of the field, the one set of frequencies and phases every tile (or audio
segment) of a file starts from (the hidden and output layers keep their random, per-tile initialisation:
``Prior.spread``). It is fitted *jointly*: random crops of the corpus photos (excerpts of its recordings), each cut
into the codec's tiles, all fitted at once with the codec's objective, step budget, learning rate and sub-grid
steps, every tile with its own hidden layers but one shared first layer. The loop is its own (``fit.fit`` has no
tied parameters) and so is its warm-up-times-cosine learning-rate curve, close to but not the same as
``fit.fit``'s: the shipped priors were trained with it. A first layer learned this way serves the ensemble of
tiles; averaging the first layers that tiles fitted on their own reach (Reptile) measured worse than a random one
(docs/priors.md). The first layer moves little when a file is fitted from it, so its residuals cost few bits.

One image prior per (bpp, photo size) given and one audio prior per kb/s given (mono): the field shape and tiling
the presets choose there. Fixed seed: the same corpus and arguments give the same priors (on the same machine and
torch build).
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
from ..field import BatchedSiren, FieldConfig
from ..fit import Problem, psnr_from_mse
from ..grid import SamplePlan, TileLayout, pixel_grid
from ..media import AUDIO_INPUT_EXTENSIONS, image_extension_ok, read_audio, read_image
from . import MANIFEST, Prior, read, save

SHARED = (0, 1)  # tensors learned (first layer's weights and biases); the others start random in every tile
NOMINAL_SECONDS = 6.0  # the recording length the presets are asked about (the segment hardly depends on it)


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


def corpus_speech(folder: str) -> tuple[np.ndarray, list[str], int]:
    """Every recording under ``folder``, first channel, joined end to end in name order → ((N, 1) float32,
    names, sample rate). Joined, because a speech corpus is often many short clips (a spoken digit: 0.5 s), shorter
    than the excerpts; they must share one sample rate (segments are cut in samples)."""
    names = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                   if os.path.splitext(f)[1].lower() in AUDIO_INPUT_EXTENSIONS)
    parts, rates = [], set()
    for name in names:
        x, rate = read_audio(name)
        parts.append(x[:, :1])
        rates.add(rate)
    if len(rates) > 1:
        raise SnfInputError(f"{folder}: the recordings have different sample rates ({sorted(rates)} Hz); "
                            "convert them to one")
    joined = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32) if parts else np.zeros((0, 1), np.float32)
    return joined, [os.path.relpath(n, folder) for n in names], rates.pop() if rates else 0


def random_crops(photos: list[np.ndarray], count: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """(count, size·size, 3) float32 crops in [-1, 1], each from a photo drawn at random."""
    out = []
    for _ in range(count):
        p = photos[rng.integers(len(photos))]
        y, x = rng.integers(p.shape[0] - size + 1), rng.integers(p.shape[1] - size + 1)
        out.append(torch.from_numpy(p[y:y + size, x:x + size].reshape(-1, 3).astype(np.float32) / 127.5 - 1.0))
    return torch.stack(out)


def random_excerpts(speech: np.ndarray, count: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    """(count, length, 1) float32 excerpts in [-1, 1] of ``speech`` ((N, 1)), each at a random place."""
    starts = rng.integers(len(speech) - length + 1, size=count)
    return torch.stack([torch.from_numpy(speech[t:t + length]) for t in starts])


def joint_first_layer(config: FieldConfig, layout: TileLayout, targets: torch.Tensor, steps: int, lr: float,
                      stride: int, seed: int, rng: np.random.Generator, desc: str,
                      progress: bool) -> tuple[tuple[np.ndarray, ...], float, float]:
    """Fit every tile of ``targets`` ((G, N, C) in [-1, 1], each signal cut by ``layout``) at once, each tile its
    own hidden and output layers, all one first layer → (the prior's tensors: that first layer, zeros
    elsewhere; the joint fit's final PSNR; seconds)."""
    problem = Problem(SamplePlan(layout, [pixel_grid(n) for n in layout.shape]), targets, torch.device("cpu"),
                      presets.GRADIENT_WEIGHT[config.in_dim])
    generator = torch.Generator().manual_seed(seed)
    start = BatchedSiren(config, 1, generator)
    start.wrap_phases()
    n = len(targets) * layout.num_tiles
    model = BatchedSiren(config, n, generator)
    shared = [torch.nn.Parameter(start.tensors()[k].detach().clone()) for k in SHARED]
    own = [t for k, t in enumerate(model.tensors()) if k not in SHARED]
    optimizer = torch.optim.Adam(shared + own, lr=lr)
    warm = max(1, steps // 50)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm) * (
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(steps, 1))))))
    subgrids = problem.subgrids(stride)
    strided = int(0.9 * steps) if subgrids else 0
    began = time.perf_counter()
    bar = tqdm(range(steps + 1), desc=desc, disable=not progress, unit="step")
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
    return tensors, round(psnr_from_mse(float(mse.mean())), 3), round(time.perf_counter() - began, 1)


def _spread(config: FieldConfig) -> tuple[float, ...]:
    return tuple(0.0 if k in SHARED else 1.0 for k in range(2 * (config.sine_layers + 1)))


def _scaled(field: FieldConfig, alpha_first: float | None) -> tuple[FieldConfig, tuple[float, float]]:
    """``field`` with the weight scaling the presets choose (α_first overridden when given)."""
    alpha = presets.auto_alpha(field)
    alpha = alpha if alpha_first is None else (float(alpha_first), alpha[1])
    return dataclasses.replace(field, alpha_first=alpha[0], alpha_hidden=alpha[1]), alpha


def train_image_prior(photos: list[np.ndarray], bpp: float, size: tuple[int, int], prior_id: int, crops: int,
                      crop: int, steps: int | None, seed: int, progress: bool = True,
                      alpha_first: float | None = None) -> Prior:
    """The prior for RGB photos of ``size`` (height, width) at ``bpp``: the presets' field and tiling there,
    its shared first layer fitted jointly to ``crops`` random crops of ``crop``² pixels (see the module),
    starting from the weight-scaled initialisation (α_first: the presets' choice unless given)."""
    arch = codec.image_architecture(size[0], size[1], 3, bpp)
    config, alpha = _scaled(arch.field, alpha_first)
    tile = arch.tiling.tile[0]
    crop = max(crop, tile)
    if any(min(p.shape[:2]) < crop for p in photos):
        raise SnfInputError(f"a corpus photo is smaller than the {crop}-pixel crops; use larger photos")
    rng = np.random.default_rng(seed)
    targets = random_crops(photos, crops, crop, rng)
    steps = steps if steps is not None else presets.effort_steps(config)["default"]
    lr = presets.auto_lr(config, alpha)
    tensors, psnr, seconds = joint_first_layer(
        config, dataclasses.replace(arch.tiling, shape=(crop, crop)), targets, steps, lr,
        presets.fit_stride(config), seed, rng, f"prior {bpp:g} bpp", progress)
    info = {"bpp": bpp, "size": list(size), "tile": list(arch.tiling.tile), "crops": crops, "crop": crop,
            "steps": steps, "lr": lr, "seed": seed, "final_psnr": psnr, "seconds": seconds}
    return Prior(prior_id, f"image-rgb-w{config.width}-t{tile}", config, tensors, _spread(config),
                 tuple(arch.tiling.tile), info)


def train_audio_prior(speech: np.ndarray, rate: int, kbps: float, prior_id: int, excerpts: int,
                      segments: int, steps: int | None, seed: int, progress: bool = True,
                      alpha_first: float | None = None) -> Prior:
    """The prior for mono sounds at ``kbps``: the presets' field and segment there (for a recording of
    NOMINAL_SECONDS at ``rate`` Hz; the segment's duration is the same at every sample rate), its shared first
    layer fitted jointly to ``excerpts`` random excerpts of ``segments`` segments each from ``speech`` ((N, 1)
    float32 at ``rate`` Hz). Sounds at other sample rates get no prior from it (``Prior.rate``)."""
    nominal = np.zeros((int(NOMINAL_SECONDS * rate), 1), np.float32)
    arch = codec.prepare_audio(nominal, rate, codec.EncodeOptions(kbps=kbps, field="tiles")).arch
    config, alpha = _scaled(arch.field, alpha_first)
    segment = arch.tiling.tile[0]
    length = segment * segments
    if len(speech) < length:
        raise SnfInputError(f"the corpus recordings last {len(speech) / rate:.3g} s in all, less than one "
                            f"{length / rate:.3g}-s excerpt; add recordings or use fewer --segments")
    rng = np.random.default_rng(seed)
    targets = random_excerpts(speech, excerpts, length, rng)
    steps = steps if steps is not None else presets.effort_steps(config)["default"]
    lr = presets.auto_lr(config, alpha)
    tensors, psnr, seconds = joint_first_layer(
        config, dataclasses.replace(arch.tiling, shape=(length,)), targets, steps, lr,
        presets.fit_stride(config), seed, rng, f"prior {kbps:g} kb/s", progress)
    info = {"kbps": kbps, "sample_rate": rate, "segment": segment, "segment_ms": round(1000 * segment / rate, 3),
            "excerpts": excerpts, "segments": segments, "steps": steps, "lr": lr, "seed": seed,
            "final_psnr": psnr, "seconds": seconds}
    return Prior(prior_id, f"audio-mono-w{config.width}-{1000 * segment / rate:.0f}ms", config, tensors,
                 _spread(config), (segment,), info, rate)


def _parse_size(size: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{size!r} is not WxH") from None
    return h, w


@click.command()
@click.argument("corpus", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="folder to write priors.json / priors.npz into (snfcodec/priors for the shipped set)")
@click.option("--bpp", "rates", multiple=True, type=float, default=(0.25, 0.5, 1.0, 2.0), show_default=True,
              help="rates to learn an image prior for (the presets' field at each), from the corpus photos")
@click.option("--kbps", "audio_rates", multiple=True, type=float, default=(32.0,), show_default=True,
              help="rates to learn an audio prior for, from the corpus recordings")
@click.option("--size", default="768x512", show_default=True, help="photo size WxH the presets are asked about")
@click.option("--short-side", default=512, show_default=True, help="corpus photos are scaled to this short side")
@click.option("--crops", default=16, show_default=True, help="random crops fitted jointly per image prior")
@click.option("--crop", default=256, show_default=True, help="crop side in pixels")
@click.option("--excerpts", default=16, show_default=True,
              help="random excerpts fitted jointly per audio prior (from the recordings joined end to end)")
@click.option("--segments", default=16, show_default=True, help="segments in each excerpt")
@click.option("--steps", type=click.IntRange(min=0), default=None,
              help="fitting steps (default: the presets' default effort)")
@click.option("--seed", default=0, show_default=True,
              help="the k-th rate of each medium, in increasing order, is trained with seed + k")
@click.option("--alpha-first", type=click.FloatRange(min=0, min_open=True), default=None,
              help="α of the first layer the training starts from [default: the presets' choice]")
@click.option("--merge/--replace", default=True, show_default=True,
              help="keep the priors already in --out for other shapes")
def main(corpus, out_dir, rates, audio_rates, size, short_side, crops, crop, excerpts, segments, steps, seed,
         alpha_first, merge):
    """Learn one prior per rate from the photos and recordings in CORPUS (searched recursively) and write them
    to --out: image priors from the photos, audio priors from the recordings."""
    h, w = _parse_size(size)
    began = time.perf_counter()
    photos, photo_names = corpus_photos(corpus, short_side)
    try:
        speech, sound_names, sample_rate = corpus_speech(corpus)
    except SnfInputError as exc:
        raise click.ClickException(str(exc)) from None
    if not photos and not sound_names:
        raise click.UsageError(f"{corpus}: no RGB photo and no recording found")
    jobs = [(lambda r, k: train_image_prior(photos, r, (h, w), 0, crops, crop, steps, seed + k,
                                            alpha_first=alpha_first), rates, photo_names, "bpp")] if photos else []
    if sound_names:
        jobs.append((lambda r, k: train_audio_prior(speech, sample_rate, r, 0, excerpts, segments, steps, seed + k,
                                                    alpha_first=alpha_first), audio_rates, sound_names, "kb/s"))
    kept = list(read(out_dir)) if merge and (Path(out_dir) / MANIFEST).is_file() else []
    made = 0
    for train, medium_rates, names, unit in jobs:
        for k, r in enumerate(sorted(set(medium_rates))):
            try:
                prior = train(r, k)
            except SnfInputError as exc:
                raise click.ClickException(str(exc)) from None
            prior.info["corpus"] = names
            prior = dataclasses.replace(prior, id=max((p.id for p in kept), default=0) + 1)
            kept = [p for p in kept if not p.fits(prior.config, prior.tile, prior.rate)] + [prior]
            made += 1
            click.echo(f"{prior.name} (#{prior.id}, {prior.checksum:08x}): {r:g} {unit}, {prior.info['steps']} "
                       f"steps, joint fit {prior.info['final_psnr']} dB, {prior.info['seconds']} s")
    save(kept, Path(out_dir))
    click.echo(f"{made} priors from {len(photos)} photos and {len(sound_names)} recordings written to {out_dir} in "
               f"{time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
