"""Files per second: one batched ``encode_many`` against one ``encode`` call per file, same files, same process.

    python -m snfcodec.eval.throughput PHOTO_DIR --out DIR [--size 32] [--count 1000] [--bpp 2] [--single 100]
                                       [--jobs N] [--ray] [--device cpu|cuda] [--field auto|tiles|latent]

Cuts ``--count`` crops of ``--size``² pixels at seeded random places from the photos in PHOTO_DIR and writes
them as PNG files (so both paths read files, as a user's would). Then:

- one by one: ``snfcodec.encode(path, out)`` for the first ``--single`` crops (a sample when --count is large:
  one-by-one cost per file does not depend on how many there are);
- batched: ``snfcodec.encode_many(all crops, out_dir, jobs=N)`` (``--jobs``: worker processes, one thread each;
  1 runs the batch in this process);
- with ``--ray``: the same on a local Ray cluster, and a run stopped half-way then resumed with
  ``skip_existing``, counting that every file ends up written exactly once.

Prints files per second, the speed-up and the mean PSNR of each path over the same files; writes throughput.json.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import click
import numpy as np
from PIL import Image

import snfcodec

from .. import presets
from ..media import image_extension_ok, read_image


def make_crops(photo_dir: str, out: str, size: int, count: int, seed: int = 0) -> list[str]:
    """``count`` RGB crops of size×size from the photos, at seeded random positions → their PNG paths."""
    photos = [read_image(os.path.join(photo_dir, n)) for n in sorted(os.listdir(photo_dir))
              if image_extension_ok(n)]
    photos = [p for p in photos if min(p.shape[:2]) >= size and p.shape[2] == 3]
    if not photos:
        raise click.UsageError(f"{photo_dir}: no RGB photo of at least {size}x{size}")
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    paths = []
    for i in range(count):
        p = photos[i % len(photos)]
        y, x = rng.integers(0, p.shape[0] - size + 1), rng.integers(0, p.shape[1] - size + 1)
        path = os.path.join(out, f"crop{i:05d}.png")
        Image.fromarray(np.ascontiguousarray(p[y:y + size, x:x + size])).save(path)
        paths.append(path)
    return paths


def _batched(paths, out_dir, options, **kw) -> tuple[dict, float]:
    start = time.perf_counter()
    results = {r.source: r for r in snfcodec.encode_many(paths, out_dir, **options, **kw)}
    seconds = time.perf_counter() - start
    failed = [r.error for r in results.values() if r.status == "error"]
    if failed:
        raise click.ClickException(f"{len(failed)} batched encodes failed, e.g. {failed[0]}")
    return {s: r.result.psnr for s, r in results.items()}, seconds


def run(paths: list[str], out: str, options: dict, single: int, ray: bool, jobs: int = 1) -> dict:
    report = {"files": len(paths), "options": options, "jobs": jobs}
    alone_dir = os.path.join(out, "one_by_one")
    os.makedirs(alone_dir, exist_ok=True)
    start = time.perf_counter()
    alone = {p: snfcodec.encode(p, os.path.join(alone_dir, os.path.basename(p)[:-4] + ".snf"), **options).psnr
             for p in paths[:single]}
    t_alone = time.perf_counter() - start
    report["one_by_one"] = {"files": len(alone), "seconds": t_alone, "files_per_second": len(alone) / t_alone}

    batched, t_batch = _batched(paths, os.path.join(out, "batched"), options, jobs=jobs)
    report["batched"] = {"files": len(paths), "seconds": t_batch, "files_per_second": len(paths) / t_batch}
    report["speedup"] = report["batched"]["files_per_second"] / report["one_by_one"]["files_per_second"]
    sample = list(alone)
    report["mean_psnr_one_by_one"] = float(np.mean([alone[p] for p in sample]))
    report["mean_psnr_batched_same_files"] = float(np.mean([batched[p] for p in sample]))
    report["mean_psnr_batched_all"] = float(np.mean(list(batched.values())))

    if ray:
        ray_dir = os.path.join(out, "ray")
        shutil.rmtree(ray_dir, ignore_errors=True)
        on_ray, t_ray = _batched(paths, ray_dir, options, cluster="local")
        report["ray"] = {"seconds": t_ray, "files_per_second": len(paths) / t_ray,
                         "overhead_seconds": t_ray - t_batch,
                         "mean_psnr": float(np.mean(list(on_ray.values()))),
                         "max_psnr_difference_vs_batched": float(max(abs(on_ray[p] - batched[p]) for p in paths))}
        # Stop half-way (as a killed run would: finished files are on disk, the rest is not), then resume.
        resume_dir = os.path.join(out, "resumed")
        shutil.rmtree(resume_dir, ignore_errors=True)
        first = snfcodec.encode_many(paths, resume_dir, cluster="local", **options)
        done = 0
        for r in first:
            done += r.status == "ok"
            if done >= len(paths) // 2:
                break
        first.close()
        on_disk = len(os.listdir(resume_dir))
        statuses = [r.status for r in snfcodec.encode_many(paths, resume_dir, skip_existing=True,
                                                           cluster="local", **options)]
        report["ray_resume"] = {"written_before_stop": on_disk, "skipped_on_rerun": statuses.count("skipped"),
                                "encoded_on_rerun": statuses.count("ok"), "failed": statuses.count("error"),
                                "files_at_end": len(os.listdir(resume_dir))}
    return report


@click.command()
@click.argument("photo_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--size", type=click.IntRange(min=8), default=32, show_default=True, help="Crop side in pixels.")
@click.option("--count", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--bpp", type=float, default=2.0, show_default=True)
@click.option("--effort", type=click.Choice(presets.EFFORTS), default="default", show_default=True)
@click.option("--single", type=click.IntRange(min=1), default=100, show_default=True,
              help="How many of the files to encode one by one.")
@click.option("--jobs", type=click.IntRange(min=0), default=1, show_default=True,
              help="Worker processes of the batched path (0: one per CPU core).")
@click.option("--ray", is_flag=True, help="Also run on a local Ray cluster, and a stopped-and-resumed Ray run.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--field", type=click.Choice(["auto", "tiles", "latent"]), default="auto", show_default=True,
              help="Image field (auto: the tiled one for small crops at this rate, the latent one from ~128x128).")
def main(photo_dir, out, size, count, bpp, effort, single, jobs, ray, device, field):
    """Batched encoding against one encode per file."""
    paths = make_crops(photo_dir, os.path.join(out, f"crops_{size}"), size, count)
    report = run(paths, out, {"bpp": bpp, "effort": effort, "device": device, "field": field}, min(single, count),
                 ray, jobs)
    report.update(size=size)
    with open(os.path.join(out, "throughput.json"), "w") as f:
        json.dump(report, f, indent=2)
    a, b = report["one_by_one"], report["batched"]
    click.echo(f"{count} crops of {size}x{size} at {bpp} bpp, effort {effort}, device {device}, field {field}")
    click.echo(f"one by one: {a['files']} files in {a['seconds']:.1f} s = {a['files_per_second']:.3f} files/s, "
               f"mean PSNR {report['mean_psnr_one_by_one']:.3f} dB")
    click.echo(f"batched ({jobs} job{'s' if jobs != 1 else ''}): {b['files']} files in {b['seconds']:.1f} s = "
               f"{b['files_per_second']:.3f} files/s, "
               f"mean PSNR {report['mean_psnr_batched_same_files']:.3f} dB on the same {a['files']} files "
               f"({report['mean_psnr_batched_all']:.3f} on all)")
    click.echo(f"speed-up:   {report['speedup']:.1f}x")
    if ray:
        r, s = report["ray"], report["ray_resume"]
        click.echo(f"ray (local cluster): {r['seconds']:.1f} s = {r['files_per_second']:.3f} files/s, overhead "
                   f"{r['overhead_seconds']:+.1f} s vs batched, mean PSNR {r['mean_psnr']:.3f} dB (max per-file "
                   f"difference {r['max_psnr_difference_vs_batched']:.4f} dB)")
        click.echo(f"ray stopped half-way: {s['written_before_stop']} files on disk; rerun with skip_existing: "
                   f"{s['skipped_on_rerun']} skipped, {s['encoded_on_rerun']} encoded, {s['failed']} failed; "
                   f"{s['files_at_end']} files at the end")


if __name__ == "__main__":
    main()
