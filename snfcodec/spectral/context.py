"""The entropy model of the audio spectra: every coefficient's Laplace scale predicted from coefficients the
decoder already has, by the integer-exact networks of the image field (:mod:`snfcodec.latent.context`).

Decoding order (per window, :mod:`.coding`): components k = 0 … K − 1 in turn, each in two passes over the
frames, even frames then odd ones (all channels and frames of a pass at once: at most 2N vectorised passes,
whatever the duration). A coefficient's
context is its component index and the magnitudes of the two components below it in its own frame, of the one
below it in the frames before and after, and — in the odd pass — of its own component in the frames before and
after (decoded in the even pass). Magnitudes enter as an integer log, :func:`magnitude`, computed exactly.
The model is zero-mean (MDCT signs are a coin toss): one output, ln b.
"""

from __future__ import annotations

import numpy as np
import torch

from ..latent import tables
from ..latent.context import ContextModel, IntegerContext, context_shapes, laplace_bits

FEATURES = (5, 7)  # inputs of the even-pass and odd-pass networks
MAX_COEFFICIENT = 16383  # |integer coefficient| the format allows (a step floor: about 74 dB for a full-scale
# tone in frames of 1024)
# b from e^-3 ≈ 0.05 to e^(−3 + 71/6) ≈ 6,900 in steps of e^(1/6); zero-centred, so one offset.
FAMILY = tables.LaplaceTables(ln_b0=-3.0, scales_per_e=6, num_scales=72, offsets=1, radius=MAX_COEFFICIENT)


def magnitude(q: np.ndarray) -> np.ndarray:
    """Integer log-magnitude of integers: 0 for 0, else 8·e + ⌊16·f⌋ − 8 where |q| = f·2^e, f ∈ [½, 1)
    (≈ 8·log2|q| + 8, piecewise linear). ``frexp`` is exact, so every machine gets the same integers."""
    f, e = np.frexp(np.abs(q).astype(np.float64))
    return np.where(q == 0, 0, 8 * e.astype(np.int64) + np.floor(16 * f).astype(np.int64) - 8)


# magnitude() of every coefficient the format allows, looked up by the decoder's passes
_MAGNITUDES = magnitude(np.arange(-MAX_COEFFICIENT, MAX_COEFFICIENT + 1)).astype(np.float64)


def _position(k: int) -> int:
    """magnitude(k + 1) of a component index, in Python integers (the same integer log)."""
    n = (k + 1).bit_length()
    return 8 * n + (16 * (k + 1) >> n) - 8


def _padded(mag: np.ndarray) -> np.ndarray:
    """(C, F, N) → (C, F + 2, N + 2) with mag[c, m, k] at [c, m + 1, k + 2] and zeros around."""
    C, F, N = mag.shape
    out = np.zeros((C, F + 2, N + 2), dtype=np.int64)
    out[:, 1:-1, 2:] = mag
    return out


def all_features(q: np.ndarray) -> np.ndarray:
    """Context of every coefficient of a complete grid q (C, F, N) int → (C, F, N, 7) float64 (integers); each
    coefficient's row is what the decoder sees when it reaches it (the odd pass's two extra columns; the even
    pass uses 5). The same columns as :func:`_columns`, as slices of the padded grid."""
    C, F, N = q.shape
    P = _padded(magnitude(q))
    pos = np.broadcast_to(magnitude(np.arange(1, N + 1))[None, None], (C, F, N))
    mid, before, after = slice(1, F + 1), slice(0, F), slice(2, F + 2)
    k1, k2, k0 = slice(1, N + 1), slice(0, N), slice(2, N + 2)  # k − 1, k − 2, k
    cols = [P[:, mid, k1], P[:, mid, k2], P[:, before, k1], P[:, after, k1], P[:, before, k0], P[:, after, k0]]
    return np.stack([pos] + cols, axis=-1, dtype=np.float64)


def pass_positions(F: int, p: int) -> np.ndarray:
    return np.arange(p, F, 2)


class PassGrid:
    """What a decoder holds of one window: magnitudes (N + 2, C, F + 2) float64, mag[c, m, k] at [k + 2, c, m + 1]
    with zeros around — component-major, so each context column of a pass is one strided slice. Gives a pass its
    context (the same rows :func:`all_features` computes from the whole grid) and takes its decoded values."""

    def __init__(self, C: int, F: int, N: int):
        self.F = F
        self.mag = np.zeros((N + 2, C, F + 2))
        self._x = [np.empty((C, len(pass_positions(F, p)), FEATURES[p])) for p in (0, 1)]

    def features(self, k: int, p: int) -> np.ndarray:
        """Context of pass (k, p) → (C · frames of the pass, FEATURES[p]) float64 (integers), channel-major."""
        x, M, F = self._x[p], self.mag, self.F
        mid, before, after = slice(p + 1, F + 1, 2), slice(p, F, 2), slice(p + 2, F + 2, 2)
        x[..., 0] = _position(k)
        x[..., 1], x[..., 2] = M[k + 1, :, mid], M[k, :, mid]
        x[..., 3], x[..., 4] = M[k + 1, :, before], M[k + 1, :, after]
        if p:
            x[..., 5], x[..., 6] = M[k + 2, :, before], M[k + 2, :, after]
        return x.reshape(-1, FEATURES[p])

    def record(self, k: int, p: int, values: np.ndarray) -> None:
        """Pass (k, p)'s decoded coefficients (C, frames of the pass), within ±MAX_COEFFICIENT."""
        self.mag[k + 2, :, p + 1:self.F + 1:2] = _MAGNITUDES[values + MAX_COEFFICIENT]


def new_model(width: int, generator: torch.Generator, mean_abs: float) -> ContextModel:
    """Float networks that start from the zero-mean Laplace of the grid's mean magnitude."""
    return ContextModel(width, generator, FEATURES, outputs=1,
                        initial_log_scale=float(np.clip(np.log(max(mean_abs, 1e-3)), *FAMILY.ln_b_range)))


def shapes(width: int) -> list[tuple[int, ...]]:
    return context_shapes(width, FEATURES, outputs=1)


def integer_model(weights: list[np.ndarray]) -> IntegerContext:
    return IntegerContext(weights, FEATURES, FAMILY)


def float_log_scale(model: ContextModel, x: torch.Tensor, odd: torch.Tensor) -> torch.Tensor:
    """ln b of coefficients with features x (n, 7) float32, each from its pass's network (odd (n,) bool)."""
    out = x.new_empty(len(x))
    for p, sel in enumerate((~odd, odd)):
        out[sel] = model.nets[p](x[sel][:, :FEATURES[p]])[:, 0]
    return out


def float_bits(model: ContextModel, x: torch.Tensor, odd: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Bits of integer coefficients q (n,) under the float model."""
    return laplace_bits(q, torch.zeros(()), float_log_scale(model, x, odd), FAMILY)


def integer_tables(context: IntegerContext, x: np.ndarray, odd: np.ndarray) -> np.ndarray:
    """Table index of every coefficient (n,) from features x (n, 7) int under the integer model."""
    table = np.empty(len(x), dtype=np.int64)
    for p in (0, 1):
        sel = np.flatnonzero(odd == bool(p))
        if len(sel):
            table[sel] = context.predict(p, x[sel])[0]
    return table
