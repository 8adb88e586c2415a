"""Decoding below the original rate: the field's ideal low-pass at the new Nyquist frequency, sampled there.

Leaving out the components above the new Nyquist frequency is not a sharp low-pass — a sine-windowed cosine just
below the cut leaks above it and aliases, one just above leaks below and is lost — and measured 72 dB from the
ideal on speech whatever the rate (docs/audio.md). So a decode at R′ < R takes the field at its own instants (the
inverse MDCT: exact and fast) and removes everything at or above R′/2 by the discrete Fourier transform, the
brick-wall filter a resampler can only approach. The field's own content above R/2 (the leakage of its top
components) is where the sine window's spectrum has fallen by > 100 dB, so this is the low-pass of the continuous
field to that precision.

An ideal low-pass reaches every sample (its kernel decays as 1/t), so the signal is cut into segments of
``OUTPUT_SEGMENT`` and each is filtered with ``margin`` samples of context on both sides (overlap-save): on speech
at 48 kHz the segmented decode is within 100 dB of the whole-signal one at a margin of 2^15 samples (96.6 at 2^14,
90 at 2^12). Memory: one segment, whatever the duration — four margins of q·2^k ≥ 2^15 samples for R′/R = p/q in
lowest terms, so a request whose q would need more than ``MAX_SEGMENT_VALUES`` is refused.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

import numpy as np

from ..errors import SnfInputError

MARGIN = 1 << 15  # samples of context each side of a segment, at the original rate (at least)
MAX_SEGMENT_VALUES = 1 << 24  # samples × channels of one segment (its spectrum takes twice that in memory)


def segment_sizes(rate: int, new_rate: int) -> tuple[int, int, int, int]:
    """(p, q, body, margin): R′/R = p/q in lowest terms; a segment's body and margin in original samples, both
    multiples of q so that they start on an output sample, the margin ≥ MARGIN and the body twice the margin
    (FFT lengths q·2^k)."""
    g = math.gcd(rate, new_rate)
    p, q = new_rate // g, rate // g
    margin = q << max(0, math.ceil(math.log2(MARGIN / q)))
    return p, q, 2 * margin, margin


def _brick_wall(segment: np.ndarray, p: int, q: int) -> np.ndarray:
    """(L, C) float64 with L·p/q whole → (L·p/q, C): the spectrum below the new Nyquist frequency kept, the rest
    dropped (its Nyquist bin made real), sampled at the new rate."""
    n = len(segment) * p // q
    spectrum = np.fft.rfft(segment, axis=0)
    kept = spectrum[:n // 2 + 1].copy()
    if n % 2 == 0:
        kept[-1] = kept[-1].real
    return np.fft.irfft(kept, n, axis=0) * (n / len(segment))


def downsample(blocks: Iterable[tuple[int, np.ndarray]], length: int, channels: int, rate: int, new_rate: int,
               count: int) -> Iterator[tuple[int, np.ndarray]]:
    """Blocks (first sample, (n, C) float64) of a signal of ``length`` samples at ``rate``, in order → blocks
    (first output sample, (m, C) float64) of its ideal low-pass sampled at ``new_rate`` < ``rate`` (output j at
    t_j = j·rate/new), ``count`` samples in all; zero outside the signal."""
    p, q, body, margin = segment_sizes(rate, new_rate)
    if (body + 2 * margin) * channels > MAX_SEGMENT_VALUES:
        raise SnfInputError(f"decoding {rate} Hz audio at {new_rate} Hz needs low-pass segments of "
                            f"{body + 2 * margin} samples ({new_rate}/{rate} reduces to {p}/{q}); ask for a rate "
                            "with a simpler ratio to the file's")
    out_body = body // q * p
    held, held_from = np.zeros((0, channels)), 0  # input samples held_from … held_from + len(held) − 1
    source = iter(blocks)
    for j0 in range(0, count, out_body):
        lo = j0 // p * q - margin  # j0 is a multiple of p, so t_{j0} is a whole sample
        hi = lo + body + 2 * margin
        while held_from + len(held) < min(hi, length):
            start, block = next(source)
            held = np.concatenate([held, block[max(0, held_from + len(held) - start):]])
        segment = np.zeros((hi - lo, channels))
        a, b = max(lo, held_from), min(hi, held_from + len(held))
        segment[a - lo:b - lo] = held[a - held_from:b - held_from]
        filtered = _brick_wall(segment, p, q)
        first = margin // q * p
        yield j0, filtered[first:first + min(out_body, count - j0)]
        keep_from = lo + body  # the next segment starts here
        held, held_from = held[max(0, keep_from - held_from):], max(held_from, keep_from)
