"""Probability tables that every machine computes bit for bit alike, and range coding with them.

A decoder must rebuild exactly the probabilities the encoder used, or the range decoder reads garbage. Basic
IEEE-754 binary64 operations (+, −, ×, ÷, floor) are correctly rounded everywhere, but ``exp`` comes from each
platform's maths library and may differ in the last bit. So the tables here are built with an ``exp`` of our
own made of basic operations only (:func:`det_exp`), and handed to constriction's ``Categorical`` model, whose
own quantization of the table is again basic arithmetic. Same inputs, same model, on any machine.

A table is a discretised Laplace distribution (the probability of each integer bin [k − ½, k + ½)) over a
finite alphabet, indexed by a scale index and an offset of its centre (:class:`LaplaceTables`: one family for the
image latents, one for the audio spectra).
"""

from __future__ import annotations

import math

import constriction
import numpy as np

from ..errors import SnfFormatError

_LN2 = 0.6931471805599453


def det_exp(x: np.ndarray) -> np.ndarray:
    """e^x for x ≤ 0 from basic float64 operations only: identical on every IEEE-754 machine.

    x = k·ln2 + r with |r| ≤ ln2/2; e^r by its Taylor series to the 14th power, times 2^k;
    measured relative error against np.exp: under 6e-15 for x ≥ −60, under 1e-13 down to −700.
    """
    x = np.maximum(np.asarray(x, dtype=np.float64), -700.0)
    k = np.floor(x / _LN2 + 0.5)
    r = x - k * _LN2
    term = np.ones_like(r)
    total = np.ones_like(r)
    for n in range(1, 15):  # in place: the same operations in the same order, without temporaries
        term *= r
        term /= n
        total += term
    return np.ldexp(total, k.astype(np.int64))


FLOOR = 2.0 ** -30  # every symbol's least probability


def laplace_probabilities(lo: int, hi: int, centre: float, b: float) -> np.ndarray:
    """P(bin k) for k = lo..hi of a Laplace(centre, b), renormalised on the alphabet: (hi − lo + 1,) float64.

    Each bin's mass is F(k + ½) − F(k − ½) with F the Laplace CDF, written so that only e^(≤ 0) is needed.
    A floor of 2^-30 keeps every symbol codable (constriction gives each at least its smallest probability).
    F is evaluated only at the run of edges within 21 + 1/b scales of the centre: a bin with an edge further out
    holds under ½e^-21 < 2^-30 and is floored either way, so the table is the same, and a wide alphabet costs
    only its run (the audio tables have 32,767 bins).
    """
    n = hi - lo + 1
    reach = 21.0 + 1.0 / b
    # z = (edge − centre)/b is monotone in the edge, so the edges with |z| ≤ reach are a run; find it in a window
    # two edges wider than the real-number bounds (edge i is lo + i − ½)
    w0 = min(n, max(0, math.floor(centre - reach * b - lo) - 2))
    w1 = min(n, max(0, math.ceil(centre + reach * b - lo + 1) + 2))
    z = (np.arange(lo + w0, lo + w1 + 1, dtype=np.float64) - 0.5 - centre) / b
    near = np.flatnonzero(np.abs(z) <= reach)
    if len(near) == 0:  # the centre is far outside the alphabet: every bin floored
        return np.full(n, FLOOR / math.fsum([n * FLOOR]))
    first, stop = max(0, near[0] - 1), min(len(z), near[-1] + 2)  # the run and one edge either side
    zr = z[first:stop]
    if centre == 0 and lo == -hi and w0 + first == n - (w0 + stop - 1):  # ±(k − ½)/b: each |z| twice, exactly
        half = det_exp(-zr[len(zr) // 2:])
        e = np.concatenate([half[::-1], half])
    else:
        e = det_exp(-np.abs(zr))  # elementwise, so the same values as computing each edge on its own
    F = np.where(zr < 0, 0.5 * e, 1.0 - 0.5 * e)
    far = np.abs(zr) > reach
    F[far] = (zr[far] >= 0).astype(np.float64)
    run = np.maximum(F[1:] - F[:-1], FLOOR)  # bins w0 + first … w0 + stop − 2; every other bin is floored
    kept = run[run != FLOOR]
    # fsum: correctly rounded, so no summation order to differ; the floored bins' exact sum is one term
    total = math.fsum(kept.tolist() + [(n - len(kept)) * FLOOR])
    p = np.full(n, FLOOR / total)
    p[w0 + first:w0 + stop - 1] = run / total
    return p


class LaplaceTables:
    """A family of discretised Laplace tables: NUM_SCALES × OFFSETS of them over residuals −radius..radius around
    an integer centre, table ``s · offsets + o`` with scale b = e^(ln_b0 + s / scales_per_e) and centre offset
    o / offsets; each built on first use."""

    def __init__(self, ln_b0: float, scales_per_e: int, num_scales: int, offsets: int, radius: int):
        self.ln_b0, self.scales_per_e, self.num_scales = ln_b0, scales_per_e, num_scales
        self.offsets, self.radius = offsets, radius
        self._models: dict[int, object] = {}
        self._bits: dict[int, np.ndarray] = {}
        self._matrix: np.ndarray | None = None  # (count, 2·radius + 1) bits of every table, built on first use

    @property
    def count(self) -> int:
        return self.num_scales * self.offsets

    @property
    def ln_b_range(self) -> tuple[float, float]:
        """The smallest and largest ln b a table has (training clamps its scales to them)."""
        return self.ln_b0, self.ln_b0 + (self.num_scales - 1) / self.scales_per_e

    def scale_of(self, s: int) -> float:
        """Laplace scale b = e^(ln_b0 + s / scales_per_e) of scale index ``s`` (through det_exp: e^x = 1 / e^-x
        above zero), so the same on every machine."""
        x = self.ln_b0 + s / self.scales_per_e
        return float(det_exp(np.array([x]))[0]) if x <= 0 else float(1.0 / det_exp(np.array([-x]))[0])

    def scale_index(self, b: float) -> int:
        """Scale index nearest Laplace scale ``b`` (encoder side only: no need to be exact)."""
        return int(np.clip(round((np.log(max(b, 1e-30)) - self.ln_b0) * self.scales_per_e), 0,
                           self.num_scales - 1))

    def probabilities(self, t: int) -> np.ndarray:
        s, o = divmod(int(t), self.offsets)
        return laplace_probabilities(-self.radius, self.radius, o / self.offsets, self.scale_of(s))

    def model(self, t: int):
        if t not in self._models:
            self._models[t] = constriction.stream.model.Categorical(self.probabilities(t), perfect=False)
        return self._models[t]

    def bits(self, t: int) -> np.ndarray:
        """−log2 P of each residual under table ``t`` (the rate estimate the encoder's search uses)."""
        if t not in self._bits:
            self._bits[t] = -np.log2(self.probabilities(t))
        return self._bits[t]

    def symbol_bits(self, residuals: np.ndarray, table: np.ndarray) -> np.ndarray:
        """−log2 P of each residual (n,) under its own table (n,): the cost of single latents, for the encoder's
        trim (residuals within ±radius)."""
        if self._matrix is None:
            self._matrix = np.stack([self.bits(t) for t in range(self.count)])
        return self._matrix[table, residuals + self.radius]

    def encode(self, encoder, residuals: np.ndarray, table: np.ndarray) -> None:
        """Code one pass: residuals (n,) int in −radius..radius, table (n,) int table indices."""
        order, groups = grouped(table)
        symbols = (residuals[order] + self.radius).astype(np.int32)
        for t, a, b in groups:
            encoder.encode(symbols[a:b], self.model(t))

    def decode(self, decoder, table: np.ndarray) -> np.ndarray:
        order, groups = grouped(table)
        out = np.empty(len(table), dtype=np.int64)
        if groups:
            out[order] = np.concatenate([decoder.decode(self.model(t), b - a) for t, a, b in groups])
        return out - self.radius

    def residual_bits(self, residuals: np.ndarray, table: np.ndarray) -> float:
        """Bits the pass will cost (to within the range coder's few bytes)."""
        order, groups = grouped(table)
        symbols = residuals[order] + self.radius
        return float(sum(self.bits(t)[symbols[a:b]].sum() for t, a, b in groups))


# The image latents' tables (formats/snf.md §8): b from e^-3 ≈ 0.05 to e^4 ≈ 55 in steps of e^(1/9), centres in
# quarter samples, residuals within ±63. They also give the network weights' scales.
LATENT = LaplaceTables(ln_b0=-3.0, scales_per_e=9, num_scales=64, offsets=4, radius=63)


def grouped(table: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """A pass's positions grouped by table index, ascending, within a group in position order: (order (n,), [(table,
    start, stop)] with order[start:stop] the positions of that table). Encoder and decoder both code a pass group
    by group in this order, each group with one fixed model."""
    order = np.argsort(table, kind="stable")
    counts = np.bincount(table)
    used = np.flatnonzero(counts)
    stops = np.cumsum(counts[used])
    return order, list(zip(used.tolist(), (stops - counts[used]).tolist(), stops.tolist()))


# ---- network weights ------------------------------------------------------------------------------------

MAX_ALPHABET = 1 << 16  # symbols a weight tensor's range may span (the reader checks before building a table)


def weight_model(lo: int, hi: int, scale_index: int):
    return constriction.stream.model.Categorical(laplace_probabilities(lo, hi, 0.0, LATENT.scale_of(scale_index)),
                                                 perfect=False)


def fit_scale_index(symbols: np.ndarray) -> int:
    """Scale index nearest the maximum-likelihood Laplace scale (mean absolute value) of integer symbols."""
    return LATENT.scale_index(max(float(np.mean(np.abs(symbols))) if symbols.size else 0.0, 1e-3))


def weight_bits(symbols: np.ndarray, lo: int, hi: int, scale_index: int) -> float:
    if lo == hi:
        return 0.0
    p = laplace_probabilities(lo, hi, 0.0, LATENT.scale_of(scale_index))
    return float(-np.log2(p[symbols - lo]).sum())


def encode_weights(encoder, symbols: np.ndarray, lo: int, hi: int, scale_index: int) -> None:
    if lo != hi:  # a one-symbol alphabet costs nothing
        encoder.encode((symbols - lo).astype(np.int32), weight_model(lo, hi, scale_index))


def decode_weights(decoder, count: int, lo: int, hi: int, scale_index: int) -> np.ndarray:
    if hi - lo + 1 > MAX_ALPHABET:
        raise SnfFormatError(f"weight alphabet {lo}..{hi} is larger than {MAX_ALPHABET}")
    if lo == hi:
        return np.full(count, lo, dtype=np.int64)
    return np.asarray(decoder.decode(weight_model(lo, hi, scale_index), count), dtype=np.int64) + lo
