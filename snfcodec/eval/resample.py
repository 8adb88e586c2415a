"""Decoding a sound at another sample rate against resampling its decode.

    python -m snfcodec.eval.resample FILE [--kbps 32] [--rates 16000,96000] [--effort default]

Encodes FILE once, then for each rate R′ compares (a) the field decoded at R′ with (b) the file decoded at its own
rate and resampled to R′, both against the original resampled to R′ the same way. The resampler is the ideal
band-limited one (the FFT's zero-padding or truncation of the spectrum), so (b) is the best a PCM resampler can
do; the comparison leaves out the first and last 0.1 s, where the FFT's periodic wrap-around is felt.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction

import click
import numpy as np

import snfcodec

from .. import presets
from ..media import read_audio
from .metrics import psnr_float

EDGE_SECONDS = 0.1


def band_limited(x: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """(L, C) at ``rate`` → (L·new/rate, C) at ``new_rate`` (L·new/rate must be whole): ideal resampling."""
    n = len(x) * new_rate // rate
    X = np.fft.rfft(x.astype(np.float64), axis=0)
    keep = min(X.shape[0], n // 2 + 1)
    Y = np.zeros((n // 2 + 1, x.shape[1]), dtype=complex)
    Y[:keep] = X[:keep]
    if n < len(x) and n % 2 == 0:  # the new Nyquist bin of a real signal is real
        Y[-1] = Y[-1].real
    return np.fft.irfft(Y, n, axis=0) * (n / len(x))


def _trimmed(samples: np.ndarray, rate: int, rates) -> np.ndarray:
    """Drop samples until every new length is whole (L·R′/R an integer for each R′)."""
    step = math.lcm(*(Fraction(rate, r).numerator for r in rates))
    return samples[: len(samples) // step * step]


def compare(samples: np.ndarray, rate: int, kbps: float, rates, effort: str = "default", seed: int = 0) -> dict:
    samples = _trimmed(samples, rate, rates)
    start = time.perf_counter()
    result = snfcodec.encode(samples, sample_rate=rate, kbps=kbps, effort=effort, seed=seed)
    out = {"kbps": result.kbps, "psnr": result.psnr, "encode_seconds": time.perf_counter() - start, "rates": {}}
    native = snfcodec.decode(result.data)
    for new in rates:
        ref = band_limited(samples, rate, new)
        direct = snfcodec.decode(result.data, sample_rate=new)
        resampled = band_limited(native, rate, new)
        inner = slice(int(EDGE_SECONDS * new), len(ref) - int(EDGE_SECONDS * new))
        f32 = lambda a: np.clip(a[inner], -1, 1).astype(np.float32)  # noqa: E731
        out["rates"][new] = {"field": psnr_float(f32(direct), f32(ref)),
                             "resampled": psnr_float(f32(resampled), f32(ref))}
    return out


def _rates(ctx, param, value):
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated whole numbers of Hz, got {value!r}") from None


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--kbps", type=float, default=32.0, show_default=True)
@click.option("--rates", default="16000,96000", show_default=True, callback=_rates)
@click.option("--effort", type=click.Choice(presets.EFFORTS), default="default", show_default=True)
def main(file, kbps, rates, effort):
    """Decode FILE's field at other rates and compare with resampling its decode."""
    samples, rate = read_audio(file)
    r = compare(samples, rate, kbps, rates, effort)
    click.echo(f"{file}: {rate} Hz, {r['kbps']:.2f} kb/s, {r['psnr']:.2f} dB at {rate} Hz, "
               f"encode {r['encode_seconds']:.1f} s")
    for new, v in r["rates"].items():
        click.echo(f"  at {new} Hz: field decoded there {v['field']:.2f} dB, decode resampled "
                   f"{v['resampled']:.2f} dB (difference {v['field'] - v['resampled']:+.2f} dB)")


if __name__ == "__main__":
    main()
