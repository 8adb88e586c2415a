"""Command line: ``snfcodec encode | decode | info``. A thin layer over :mod:`snfcodec.api`.

Exit status: 0 success, 1 bad input or failed operation (one line on stderr; ``--debug`` shows the
traceback), 2 usage errors (click's convention). Outputs are written atomically; an existing output file is
replaced only when the new one is complete, and the input is never overwritten.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import sys
import time

import click
from tqdm.auto import tqdm

from . import api, batch, codec, presets
from .errors import SnfError, SnfInputError
from .files import check_not_input, write_atomic
from .media import audio_extension_ok, image_extension_ok, write_audio, write_image


def _fail_cleanly(func):
    """Turn user-facing errors into one line on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args, debug: bool = False, **kwargs):
        try:
            return func(*args, **kwargs)
        except (SnfError, OSError, MemoryError) as exc:
            if debug:
                raise
            message = str(exc) if isinstance(exc, SnfError) else f"{exc.__class__.__name__}: {exc}"
            click.echo(f"snfcodec: error: {message}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("snfcodec: interrupted", err=True)
            sys.exit(130)

    return click.option("--debug", is_flag=True, help="Show the full traceback on errors.")(wrapper)


def _parse_size(ctx, param, value):
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WxH, e.g. 640x480, got {value!r}") from None
    return w, h


def _parse_crop(ctx, param, value):
    if value is None:
        return None
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise click.BadParameter(f"expected X,Y,W,H, e.g. 0,0,64,64, got {value!r}")
    return parts


def _parse_alpha(ctx, param, value):
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"expected 'auto' or a number, got {value!r}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="snfcodec")
def main():
    """Store images and sounds as sinusoidal neural fields (.snf); decode them at any resolution or rate."""


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output .snf file; with several inputs or a folder, the output folder (mirrors their paths).")
@click.option("--bpp", type=float,
              help=f"Images: target bits per pixel of the whole file [default: {codec.DEFAULT_BPP}].")
@click.option("--kbps", type=float,
              help=f"Audio: target kilobits per second of the whole file [default: {codec.DEFAULT_KBPS}].")
@click.option("--psnr", type=float, help="Stop fitting once the field reaches this PSNR (dB).")
@click.option("--field", type=click.Choice(["auto", "tiles", "latent"]), default="auto", show_default=True,
              help="tiles (tiled SIRENs, .snf v1/v2) or latent (.snf v3: latent grids for images, a spectral "
                   "field for audio); auto: the tiled field where an option only it has is given (--psnr, "
                   "--tile, --device cuda, --prior none, --alpha, --lr), else for images the one measured better "
                   "at this rate and size (docs/latent.md), for audio the spectral field (docs/audio.md).")
@click.option("--lmbda", type=click.FloatRange(min=0, min_open=True),
              help="Latent field: the rate-distortion trade-off lambda itself, instead of a rate target.")
@click.option("--effort", type=click.Choice(presets.EFFORTS), default="default", show_default=True,
              help="Step budget.")
@click.option("--steps", type=click.IntRange(min=0), help="Explicit step budget (overrides --effort).")
@click.option("--max-seconds", type=click.FloatRange(min=0), help="Stop fitting after this many seconds.")
@click.option("--alpha", default="auto", show_default=True, callback=_parse_alpha,
              help="Weight-scaling factor; 1 is plain SIREN.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Adam learning rate [default: auto].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initialisation.")
@click.option("--tile", type=int, help="Images: tile side in pixels, one field per tile "
              "[default: 64, or 128 at low rates].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--prior", type=click.Choice(["auto", "none"]), default="auto", show_default=True,
              help="Start from the learned prior shipped for the field's shape, where there is one, and code "
                   "residuals from it (a version-2 file); none: random initialisation (version 1).")
@click.option("--skip-existing", is_flag=True, help="Leave inputs whose output exists (resume a run).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", metavar="[ADDRESS]",
              help="Several inputs: run the groups on a Ray cluster (a local one without ADDRESS).")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=1, show_default=True,
              help="Several inputs: worker processes on this machine, one thread each (0: one per CPU core).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file with the results.")
@_fail_cleanly
def encode(inputs, output, bpp, kbps, psnr, field, lmbda, effort, steps, max_seconds, alpha, lr, seed, tile, device,
           prior, skip_existing, ray_address, jobs, quiet, as_json):
    """Encode images or sounds into .snf files.

    One INPUT file and -o OUT.snf encodes one file. Several INPUTS, or folders (walked for images and sounds),
    with -o OUTDIR encode every one of them, fitting inputs of the same kind and size together.
    """
    options = dict(bpp=bpp, kbps=kbps, psnr=psnr, field=field, lmbda=lmbda, effort=effort, steps=steps, alpha=alpha,
                   lr=lr, seed=seed, tile=tile, device=device, max_seconds=max_seconds, prior=prior)
    many = len(inputs) > 1 or os.path.isdir(inputs[0]) or os.path.isdir(output) or output.endswith(("/", os.sep))
    if not many:
        if ray_address is not None or jobs != 1:
            raise click.UsageError(f"{'--ray' if ray_address is not None else '--jobs'} runs several inputs; "
                                   "give an output folder, e.g. -o out/")
        _encode_one(inputs[0], output, options, skip_existing, quiet, as_json)
    else:
        _encode_many(inputs, output, options, skip_existing, ray_address, jobs, quiet, as_json)


def _rate_text(result) -> str:
    rate = f"{result.bpp:.4f} bpp" if result.bpp is not None else f"{result.kbps:.2f} kb/s"
    return (f"{result.bytes} bytes, {rate}, {result.psnr:.2f} dB PSNR, {result.steps}+{result.qat_steps} steps, "
            f"{result.seconds:.1f} s")


def _encode_one(input, output, options, skip_existing, quiet, as_json):
    if skip_existing and os.path.exists(output):
        if as_json:
            click.echo(json.dumps({"input": input, "output": output, "status": "skipped"}))
        elif not quiet:
            click.echo(f"{output}: exists, skipped")
        return
    result = api.encode(input, output, progress=not quiet and not as_json and sys.stderr.isatty(), **options)
    if as_json:
        click.echo(json.dumps(dict(result.summary(), input=input, output=output)))
    elif not quiet:
        click.echo(f"{output}: {_rate_text(result)}")


def _encode_many(inputs, out_dir, options, skip_existing, ray_address, jobs, quiet, as_json):
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise SnfInputError(f"{out_dir}: not a folder; with several inputs -o names the output folder")
    start = time.perf_counter()
    planned, refused = batch.plan(inputs, out_dir)
    results = itertools.chain(refused, batch.run(planned, codec.EncodeOptions(**options), skip_existing,
                                                    ray_address, jobs))
    counts = {"ok": 0, "skipped": 0, "error": 0}
    with tqdm(total=len(planned) + len(refused), unit="file", desc="encode", dynamic_ncols=True,
              disable=quiet or as_json or not sys.stderr.isatty()) as bar:
        for r in results:
            counts[r.status] += 1
            if as_json:
                click.echo(json.dumps(r.summary()))
            elif r.status == "error":
                bar.write(f"snfcodec: error: {r.error}", file=sys.stderr)
            elif not quiet:
                bar.write(f"{r.output}: " + ("exists, skipped" if r.status == "skipped" else _rate_text(r.result)))
            bar.update(1)
    if not quiet and not as_json:
        click.echo(f"snfcodec: {counts['ok']} encoded, {counts['skipped']} skipped, {counts['error']} failed "
                   f"in {time.perf_counter() - start:.1f} s", err=True)
    if counts["error"]:
        sys.exit(1)


@main.command()
@click.argument("input", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output file: an image (format by extension) or .wav/.flac for audio.")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), help="Image: output size factor, e.g. 2.")
@click.option("--size", callback=_parse_size, help="Image: output size WxH.")
@click.option("--crop", callback=_parse_crop, help="Image: region X,Y,W,H of the original canvas to decode.")
@click.option("--sample-rate", type=click.IntRange(min=1), help="Audio: output sample rate [default: original].")
@_fail_cleanly
def decode(input, output, scale, size, crop, sample_rate):
    """Decode the .snf file INPUT into an image or a sound."""
    if scale is not None and size is not None:
        raise click.UsageError("use either --scale or --size, not both")
    if not (image_extension_ok(output) or audio_extension_ok(output)):
        raise click.UsageError(f"{output}: unknown extension; use an image format (.png, .jpg, .webp, ...) "
                               "or .wav/.flac")
    check_not_input(output, input)
    data = api.read_snf(input)
    header = api.info(data)
    pixels_or_samples = api.decode(data, scale=scale, size=size, crop=crop, sample_rate=sample_rate)
    if header["kind"] == "audio":
        if not audio_extension_ok(output):
            raise SnfInputError(f"{output}: this file holds audio; write it as .wav or .flac")
        rate = sample_rate or header["sample_rate"]
        write_atomic(output, lambda tmp: write_audio(tmp, pixels_or_samples, rate))
    else:
        if not image_extension_ok(output):
            raise SnfInputError(f"{output}: this file holds an image; write it as .png, .jpg, .webp, ...")
        write_atomic(output, lambda tmp: write_image(tmp, pixels_or_samples))


@main.command()
@click.argument("input", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the header as JSON.")
@_fail_cleanly
def info(input, as_json):
    """Show everything in the header of the .snf file INPUT."""
    data = api.info(input)
    if as_json:
        click.echo(json.dumps(data))
        return
    if data["version"] == 3:
        click.echo(_latent_info(input, data) if data["kind"] == "image" else _spectral_info(input, data))
        return
    f, t = data["field"], data["tiling"]
    shape = "x".join(str(v) for v in reversed(data["shape"]))
    lines = [
        f"file:        {input} ({data['bytes']} bytes" + (f", {data['bpp']:.4f} bpp)" if "bpp" in data else ")"),
        f"format:      .snf version {data['version']}, {data['kind']}",
        f"signal:      {shape}, {data['channels']} channel(s) {data['layout']}".rstrip(),
        f"field:       {f['sine_layers']} sine layers of width {f['width']}, omega0 {f['omega0']:g}, "
        f"alpha {f['alpha_first']:g}/{f['alpha_hidden']:g}",
        f"tiling:      {t['tiles']} tiles of {'x'.join(map(str, reversed(t['tile'])))}, "
        f"margin {'x'.join(map(str, reversed(t['margin'])))}",
        f"parameters:  {data['parameters']}",
    ]
    if data["prior"] is not None:
        lines.append(f"prior:       #{data['prior']['id']} (checksum {data['prior']['checksum']}): the parameters "
                     "are residuals from this learned prior")
    if data["kind"] == "audio":
        lines[0] = f"file:        {input} ({data['bytes']} bytes, {data['kbps']:.2f} kb/s)"
        lines[2] = (f"signal:      {data['shape'][0]} samples x {data['channels']} channel(s) at "
                    f"{data['sample_rate']} Hz ({data['seconds']:.3f} s)")
    for i, q in enumerate(data["tensors"]):
        kind = "weights" if i % 2 == 0 else "biases "
        lines.append(f"  layer {i // 2} {kind} {tuple(q['shape'])}: step {q['step']:.3g}, "
                     f"symbols [{q['lo']}, {q['hi']}], Laplace loc {q['loc']} scale {q['scale']:.3g}")
    click.echo("\n".join(lines))


def _latent_info(input, data) -> str:
    f = data["field"]
    return "\n".join([
        f"file:        {input} ({data['bytes']} bytes, {data['bpp']:.4f} bpp)",
        "format:      .snf version 3, image (latent grids)",
        f"signal:      {data['shape'][1]}x{data['shape'][0]}, {data['channels']} channel(s) {data['layout']}",
        f"latents:     {data['latents']} in {f['levels']} levels (1:1 to 1:{2 ** (f['levels'] - 1)})",
        f"synthesis:   {f['hidden']} {f['activation']} layers of width {f['width']}, omega0 {f['omega0']:g}",
    ] + _network_lines(data))


def _spectral_info(input, data) -> str:
    f = data["field"]
    return "\n".join([
        f"file:        {input} ({data['bytes']} bytes, {data['kbps']:.2f} kb/s)",
        "format:      .snf version 3, audio (spectral field)",
        f"signal:      {data['shape'][0]} samples x {data['channels']} channel(s) at {data['sample_rate']} Hz "
        f"({data['seconds']:.3f} s)",
        f"field:       {f['frames']} frames of {f['frame']} windowed sinusoids in windows of {f['window']}, step "
        f"{f['step']:.4g}, channel transform {f['transform']}",
    ] + _network_lines(data))


def _network_lines(data) -> list[str]:
    """A version-3 file's context networks and stored tensors."""
    lines = [f"context:     two networks of width {data['field']['context_width']}",
             f"parameters:  {data['parameters']}"]
    for q in data["tensors"]:
        lines.append(f"  {q['role']:9} {tuple(q['shape'])}: exponent {q['exponent']}, symbols [{q['lo']}, "
                     f"{q['hi']}], Laplace scale index {q['scale_index']}")
    return lines


if __name__ == "__main__":
    main()
