"""Rate-distortion sweep of snfcodec against the codecs people use.

    python -m snfcodec.eval.rd --images DIR --out DIR [--rates 1,2,4] [--effort fast] [--quick] [--crops]
        [--field tiles,latent]
    python -m snfcodec.eval.rd --audio DIR --out DIR [--rates 16,32,64] [--quick]

Writes ``results.csv`` (one row per item × codec × setting), ``summary.json`` (mean curve per codec and the
Bjøntegaard delta rate of snfcodec against each baseline) and ``rd.png``; with ``--crops``, also
``crops/NAME.png`` per image: the same detailed region from snfcodec and each baseline at about the same rate,
labelled with codec, bpp and PSNR. Every codec is measured on the same
decoded samples (8-bit RGB for images, float PCM for audio) with the whole file as the rate.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass

import click
import numpy as np
from tqdm.auto import tqdm

import snfcodec

from .. import presets
from ..errors import SnfError
from ..media import image_extension_ok, read_audio, read_image
from .baselines import AUDIO_CODECS, IMAGE_CODECS
from .crops import detail_region, labelled_strip
from .metrics import bd_rate, ms_ssim, psnr_float, psnr_uint8

# Published numbers on other data (shared/design.md §2), drawn only as labelled reference lines.
ANCHORS = {
    "image": {
        "COIN (Kodak, published)": ([0.0736, 0.1604, 0.3074, 0.6109, 1.209], [23.21, 24.64, 26.41, 28.41, 30.64]),
        "COIN++ (Kodak, published)": ([0.1325, 0.2659, 0.3983, 0.5366], [24.93, 26.14, 27.03, 27.80]),
    },
    "audio": {
        "COIN++ (LibriSpeech, published)": ([5.63, 13.81, 27.48, 65.23], [36.01, 39.35, 42.90, 48.12]),
    },
}
RATES = {"image": (0.5, 1.0, 2.0, 4.0), "audio": (16.0, 32.0, 64.0, 128.0)}
QUICK_RATES = {"image": (1.0, 2.0, 4.0), "audio": (16.0, 32.0, 64.0)}
UNIT = {"image": "bpp", "audio": "kbps"}


@dataclass
class Row:
    item: str
    codec: str
    setting: float
    bytes: int
    rate: float  # bpp for images, kb/s for audio
    psnr: float
    ms_ssim: float  # images only (NaN for audio); SSIM where an image is too small for MS-SSIM
    encode_seconds: float
    decode_seconds: float


def _items(folder: str, kind: str) -> list[str]:
    names = sorted(os.listdir(folder))
    paths = [os.path.join(folder, n) for n in names if os.path.isfile(os.path.join(folder, n))]
    if kind == "image":
        return [p for p in paths if image_extension_ok(p)]
    return [p for p in paths if not image_extension_ok(p) and not p.endswith((".txt", ".md", ".json", ".csv"))]


def _snf_rows(path, signal, sample_rate, kind, rates, effort, seed, files: dict, field: str = "auto",
              name: str = "snfcodec"):
    """One row per rate; ``files[rate]`` keeps each encoded file (for the crops)."""
    for rate in rates:
        options = {"bpp": rate} if kind == "image" else {"kbps": rate, "sample_rate": sample_rate}
        start = time.perf_counter()
        result = snfcodec.encode(signal, effort=effort, seed=seed, field=field, **options)
        encode_seconds = time.perf_counter() - start
        start = time.perf_counter()
        decoded = snfcodec.decode(result.data)
        decode_seconds = time.perf_counter() - start
        files[rate] = result.data
        yield _row(path, name, rate, result.data, signal, decoded, sample_rate, kind, encode_seconds,
                   decode_seconds)


def _baseline_rows(path, signal, sample_rate, kind):
    for codec in IMAGE_CODECS if kind == "image" else AUDIO_CODECS:
        for setting in codec.settings:
            start = time.perf_counter()
            data = codec.encode(signal, setting, sample_rate)
            encode_seconds = time.perf_counter() - start
            start = time.perf_counter()
            decoded = codec.decode(data, signal, sample_rate)
            decode_seconds = time.perf_counter() - start
            yield _row(path, codec.name, setting, data, signal, decoded, sample_rate, kind, encode_seconds,
                       decode_seconds)


def _row(path, codec, setting, data, signal, decoded, sample_rate, kind, enc, dec) -> Row:
    if kind == "image":
        rate = 8 * len(data) / (signal.shape[0] * signal.shape[1])
        quality, structural = psnr_uint8(decoded, signal), ms_ssim(decoded, signal)[0]
    else:
        rate = 8 * len(data) / (len(signal) / sample_rate) / 1000
        quality, structural = psnr_float(decoded, signal), math.nan
    return Row(os.path.basename(path), codec, float(setting), len(data), rate, quality, structural, enc, dec)


CROP_SIDE = 128  # pixels of the original shown per panel
CROP_RATE = 1.0  # bpp: by default the crops show the snfcodec rate nearest to this


def write_crops(path: str, pixels: np.ndarray, rows: list[Row], files: dict, rate: float, out: str) -> str:
    """One labelled strip for one image: original, snfcodec at the sweep rate nearest to ``rate``, and each
    baseline at its setting whose file rate is nearest (in log) to that snfcodec file's. Returns the PNG path."""
    mine = [r for r in rows if r.item == os.path.basename(path)]
    snf = min((r for r in mine if r.codec == "snfcodec"), key=lambda r: abs(math.log(r.setting / rate)))
    side = min(CROP_SIDE, *pixels.shape[:2])
    y, x = detail_region(pixels, side)
    window = (slice(y, y + side), slice(x, x + side))
    panels = [("original", pixels[window]),
              (f"snfcodec\n{snf.rate:.2f} bpp, {snf.psnr:.2f} dB", snfcodec.decode(files[snf.setting])[window])]
    for codec in IMAGE_CODECS:
        best = min((r for r in mine if r.codec == codec.name), key=lambda r: abs(math.log(r.rate / snf.rate)))
        setting = next(s for s in codec.settings if float(s) == best.setting)  # rows hold it as a float
        decoded = codec.decode(codec.encode(pixels, setting), pixels)
        panels.append((f"{codec.name}\n{best.rate:.2f} bpp, {best.psnr:.2f} dB", decoded[window]))
    os.makedirs(os.path.join(out, "crops"), exist_ok=True)
    target = os.path.join(out, "crops", os.path.splitext(os.path.basename(path))[0] + ".png")
    labelled_strip(panels, zoom=max(1, 256 // side)).save(target)
    return target


def summarise(rows: list[Row]) -> dict:
    """Mean curve per codec (per setting: mean rate, mean of per-item PSNR) and BD-rates of snfcodec."""
    by = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by[r.codec][r.setting].append(r)
    curves = {}
    for codec, settings in by.items():
        points = []
        for setting, rs in sorted(settings.items()):
            points.append({"setting": setting, "rate": float(np.mean([r.rate for r in rs])),
                           "psnr": float(np.mean([r.psnr for r in rs])),
                           "ms_ssim": float(np.mean([r.ms_ssim for r in rs])),
                           "encode_seconds": float(np.mean([r.encode_seconds for r in rs])),
                           "decode_seconds": float(np.mean([r.decode_seconds for r in rs])), "items": len(rs)})
        # Settings an encoder clamps (LAME has no MP3 below 32 kb/s at 48 kHz) give the same file twice.
        unique = {(round(p["rate"], 9), round(p["psnr"], 9)): p for p in points}
        curves[codec] = sorted(unique.values(), key=lambda p: p["rate"])
    def bd_of(name):
        snf = curves[name]
        return {codec: bd_rate([p["rate"] for p in points], [p["psnr"] for p in points],
                               [p["rate"] for p in snf], [p["psnr"] for p in snf])
                for codec, points in curves.items() if codec != name}

    others = [c for c in curves if c.startswith("snfcodec-")]  # further fields of a --field a,b run
    bd = {k: v for k, v in bd_of("snfcodec").items() if k not in others} if "snfcodec" in curves else {}
    return {"curves": curves, "bd_rate": bd, "bd_rate_of": {c: bd_of(c) for c in others}}


def plot(summary: dict, kind: str, path: str, anchors: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    for codec, points in summary["curves"].items():
        style = {"linewidth": 2.5, "color": "black"} if codec == "snfcodec" else {"linewidth": 1.2}
        ax.plot([p["rate"] for p in points], [p["psnr"] for p in points], marker="o", markersize=3,
                label=codec, **style)
    if anchors:
        for label, (rates, psnrs) in ANCHORS[kind].items():
            ax.plot(rates, psnrs, linestyle="--", color="gray", linewidth=1, label=label)
    ax.set_xlabel("bits per pixel" if kind == "image" else "kb/s")
    ax.set_ylabel("PSNR (dB)")
    ax.set_xscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Rate-distortion ({kind}, mean over items)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(folder: str, kind: str, out: str, rates, effort: str, seed: int = 0, anchors: bool = True,
        progress: bool = True, crops: bool = False, crop_rate: float = CROP_RATE, fields=("auto",)) -> dict:
    """fields: the first is the curve called "snfcodec" (its BD-rates are the summary's), every further one is
    "snfcodec-FIELD" with its BD-rates against all the others in ``bd_rate_of``."""
    items = _items(folder, kind)
    if not items:
        raise click.UsageError(f"{folder}: no {kind} files found")
    os.makedirs(out, exist_ok=True)
    loaded = []
    for path in items:
        if kind == "image":
            loaded.append((path, read_image(path), None))
        else:
            samples, sample_rate = read_audio(path)
            loaded.append((path, samples, sample_rate))
    fields = tuple(fields)
    baselines = IMAGE_CODECS if kind == "image" else AUDIO_CODECS
    per_item = len(fields) * len(rates) + sum(len(c.settings) for c in baselines)
    rows: list[Row] = []
    start = time.perf_counter()
    with tqdm(total=per_item * len(items), desc="rd sweep", disable=not progress, unit="encode") as bar:
        for path, signal, sample_rate in loaded:
            files: dict = {}
            for i, field in enumerate(fields):
                name = "snfcodec" if i == 0 else f"snfcodec-{field}"
                for row in _snf_rows(path, signal, sample_rate, kind, rates, effort, seed,
                                     files if i == 0 else {}, field, name):
                    rows.append(row)
                    bar.update(1)
            for row in _baseline_rows(path, signal, sample_rate, kind):
                rows.append(row)
                bar.update(1)
            if crops and kind == "image":
                write_crops(path, signal, rows, files, crop_rate, out)
    summary = summarise(rows)
    summary.update({"kind": kind, "rate_unit": UNIT[kind], "items": [os.path.basename(p) for p in items],
                    "effort": effort, "snfcodec_rates": list(rates), "wall_seconds": time.perf_counter() - start,
                    "psnr_averaging": "mean of per-item PSNR"})
    _write_csv(os.path.join(out, "results.csv"), rows, kind)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, allow_nan=True)
    plot(summary, kind, os.path.join(out, "rd.png"), anchors)
    return summary


def _write_csv(path: str, rows: list[Row], kind: str) -> None:
    item, rate = ("image", "bpp") if kind == "image" else ("file", "kbps")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([item, "codec", "setting", "bytes", rate, "psnr", "ms_ssim", "encode_seconds", "decode_seconds"])
        for r in rows:
            d = asdict(r)
            w.writerow([d["item"], d["codec"], d["setting"], d["bytes"], f"{d['rate']:.6f}", f"{d['psnr']:.4f}",
                        f"{d['ms_ssim']:.6f}", f"{d['encode_seconds']:.4f}", f"{d['decode_seconds']:.4f}"])


def format_table(summary: dict) -> str:
    unit = summary["rate_unit"]
    lines = [f"{'codec':10s} {'points':>6s} {unit + ' range':>18s} {'PSNR range (dB)':>18s} "
             f"{'BD-rate of snfcodec':>20s}"]
    for codec, points in summary["curves"].items():
        rates = [p["rate"] for p in points]
        psnrs = [p["psnr"] for p in points]
        bd = summary["bd_rate"].get(codec)
        bd_text = "" if bd is None else ("no overlap" if math.isnan(bd) else f"{bd:+.1f} %")
        lines.append(f"{codec:10s} {len(points):6d} {min(rates):8.3f}–{max(rates):<9.3f} "
                     f"{min(psnrs):8.2f}–{max(psnrs):<9.2f} {bd_text:>20s}")
    lines.append(f"mean per setting ({unit} → dB), the rate each codec produced:")
    for codec, points in summary["curves"].items():
        lines.append(f"  {codec:16s} " + "  ".join(f"{p['rate']:.3g}→{p['psnr']:.2f}" for p in points))
    for name, bds in summary.get("bd_rate_of", {}).items():
        lines.append(f"BD-rate of {name}: " + ", ".join(
            f"{c} {'no overlap' if math.isnan(v) else f'{v:+.1f} %'}" for c, v in bds.items()))
    lines.append(f"wall time {summary['wall_seconds']:.0f} s; negative BD-rate: snfcodec needs fewer bits")
    return "\n".join(lines)


def _parse_rates(ctx, param, value):
    if value is None:
        return None
    try:
        rates = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None
    if not rates or any(r <= 0 for r in rates):
        raise click.BadParameter("rates must be positive")
    return rates


@click.command()
@click.option("--images", type=click.Path(file_okay=False, exists=True), help="Folder of images.")
@click.option("--audio", type=click.Path(file_okay=False, exists=True), help="Folder of audio files.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--rates", callback=_parse_rates, help="snfcodec rates: bpp for images, kb/s for audio.")
@click.option("--effort", type=click.Choice(presets.EFFORTS), help="snfcodec effort.")
@click.option("--quick", is_flag=True, help="3 rates at fast effort.")
@click.option("--field", "fields", default="auto", show_default=True,
              help="snfcodec field(s), comma-separated (auto, tiles, latent); the first is 'snfcodec'.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--anchors/--no-anchors", default=True, show_default=True,
              help="Draw published reference curves (other data sets) on the plot.")
@click.option("--crops", is_flag=True, help="Images: also write crops/NAME.png, the same region from every codec.")
@click.option("--crop-rate", type=click.FloatRange(min=0, min_open=True), default=CROP_RATE, show_default=True,
              help="The crops show the snfcodec rate nearest to this (bpp).")
def main(images, audio, out, rates, effort, quick, fields, seed, anchors, crops, crop_rate):
    """Rate-distortion curves of snfcodec and classical codecs on a folder of media."""
    if (images is None) == (audio is None):
        raise click.UsageError("give exactly one of --images DIR or --audio DIR")
    kind = "image" if images else "audio"
    rates = rates or (QUICK_RATES if quick else RATES)[kind]
    effort = effort or ("fast" if quick else "default")
    fields = tuple(f.strip() for f in fields.split(","))
    if any(f not in ("auto", "tiles", "latent") for f in fields) or len(set(fields)) != len(fields):
        raise click.BadParameter(f"expected distinct fields among auto, tiles, latent, got {','.join(fields)}",
                                 param_hint="--field")
    try:
        summary = run(images or audio, kind, out, rates, effort, seed, anchors, progress=sys.stderr.isatty(),
                      crops=crops, crop_rate=crop_rate, fields=fields)
    except SnfError as exc:
        click.echo(f"snfcodec.eval.rd: error: {exc}", err=True)
        sys.exit(1)
    click.echo(format_table(summary))
    click.echo(f"wrote {os.path.join(out, 'results.csv')}, summary.json, rd.png"
               + (", crops/*.png" if crops and kind == "image" else ""))


if __name__ == "__main__":
    main()
