"""Encoding audio as a version-3 spectral field: the coefficients of the windowed-sinusoid basis (the field's
least-squares fit, :mod:`.basis`), quantized with one step, entropy-coded under a context model trained on
them, at exactly the rate asked for.

The rate-distortion choice: the basis is orthonormal, so the squared error is the coefficients' quantization
error and one step for every coefficient is what minimises it at a given rate (the reverse water-filling of a
Gaussian source: components below the step are zeroed). Rounding is biased towards zero by ``deadzone`` of a
step (a zero costs far fewer bits than a ±1; the offset is measured, ``docs/audio.md``). The step is searched
three times: with a per-component Laplace proxy, then with the float context model trained at the proxy's step,
then, after training again there, with the integer model on the exact table bits — at or under the budget
and within its last byte's step; the range coder's last words are then confirmed by coding.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import SnfInputError
from ..latent import coding as latent_coding
from ..latent.context import laplace_bits, quantize_context
from . import basis, bitstream, coding, context
from .bitstream import SpectralHeader
from .decoder import from_mid_side

CONTEXT_SHIFTS = (0, 1, 2, 3, 4)  # candidate context-weight steps 2^(shift - 8)
NETWORK_BITS_GUESS = 8.0  # bits a context weight costs, before they are quantized
SLACK_BYTES = 8  # the range coder's flush over the bits the tables count
# Step searches (log2 step; the bracket moves out where it must): the proxy and the float model to 2^-8 of an
# octave, the exact one to 2^-13 (a 1 % rate error is about 1/30 of an octave).
PROXY_SEARCH = (8.0, 13)  # bracket half-width, bisection steps
FLOAT_SEARCH = (0.5, 7)
EXACT_SEARCH = (1 / 16, 10)
BATCH = 1 << 15  # coefficients a training step sees


@dataclass
class SpectralOptions:
    frame: int  # N: hop and component count (a power of two)
    kbps: float
    context_width: int = 12
    deadzone: float = 0.15
    steps: tuple[int, int] = (150, 100)  # context training steps at the first and the second step size
    lr: float = 1e-2
    mid_side: bool | None = None  # stereo only; None: whichever the proxy rate prefers
    seed: int = 0


@dataclass
class SpectralEncoded:
    data: bytes
    step: float
    fit_seconds: float  # training the context model
    steps: int


def quantize(coefficients: np.ndarray, step: float, deadzone: float) -> np.ndarray:
    """Integers q with q·step ≈ c, rounded towards zero by ``deadzone`` of a step, within ±MAX_COEFFICIENT."""
    q = np.floor(np.abs(coefficients) / step + (0.5 - deadzone))
    return (np.sign(coefficients) * np.clip(q, 0, context.MAX_COEFFICIENT)).astype(np.int64)


def _proxy_bits(q: np.ndarray) -> float:
    """Bits under one zero-mean Laplace per component (the scale its mean magnitude): a context-free stand-in."""
    b = np.maximum(np.abs(q).mean(axis=(0, 1)), 1e-3)
    t = torch.from_numpy(q.astype(np.float64))
    return float(laplace_bits(t, torch.zeros(()), torch.from_numpy(np.log(b))[None, None],
                                      context.FAMILY).sum())


class _Search:
    """Bisection on log2 step of a monotone bits(step) for the largest rate at or under a budget."""

    def __init__(self, coefficients, deadzone, smallest, largest):
        self.coefficients, self.deadzone = coefficients, deadzone
        self.lowest, self.highest = math.log2(smallest), math.log2(largest)

    def run(self, bits, budget: float, around: float, width: float, iterations: int) -> float:
        """The smallest step (float32-representable) with bits ≤ budget, searched from [around ± width] (the
        bracket moves out until it holds the answer) to 2^-iterations of its width."""
        lo, hi = max(around - width, self.lowest), around + width
        while lo > self.lowest and bits(self.step(lo)) <= budget:
            lo, hi = max(lo - 2 * width, self.lowest), lo
        if bits(self.step(lo)) <= budget:
            return self.step(lo)  # the finest step the format allows is under budget
        while bits(self.step(hi)) > budget:
            if hi > self.highest:  # every coefficient is zero and that is still too much
                raise SnfInputError(f"could not meet the rate target of {budget / 8:.0f} payload bytes; ask for "
                                    "a higher rate")
            lo, hi = hi, hi + 2 * width
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            if bits(self.step(mid)) <= budget:
                hi = mid
            else:
                lo = mid
        return self.step(hi)

    @staticmethod
    def step(log2_step: float) -> float:
        return float(np.float32(2.0 ** log2_step))

    def q(self, step: float) -> np.ndarray:
        return quantize(self.coefficients, step, self.deadzone)


def _tensors(q: np.ndarray):
    x = torch.from_numpy(context.all_features(q).reshape(-1, 7).astype(np.float32))
    odd = torch.from_numpy(np.broadcast_to((np.arange(q.shape[1]) % 2 == 1)[None, :, None], q.shape).reshape(-1))
    return x, odd, torch.from_numpy(q.reshape(-1).astype(np.float32))


def _train(model, q: np.ndarray, steps: int, lr: float, generator: torch.Generator) -> None:
    x, odd, y = _tensors(q)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * s / steps))
        idx = torch.randint(len(y), (min(BATCH, len(y)),), generator=generator)
        loss = context.float_bits(model, x[idx], odd[idx], y[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _float_bits(model, q: np.ndarray) -> float:
    with torch.no_grad():
        return float(context.float_bits(model, *_tensors(q)).sum())


def _integer_bits(ctx, q: np.ndarray) -> tuple[float, np.ndarray]:
    odd = np.broadcast_to((np.arange(q.shape[1]) % 2 == 1)[None, :, None], q.shape).reshape(-1)
    table = context.integer_tables(ctx, context.all_features(q).reshape(-1, 7), odd)
    return context.FAMILY.residual_bits(q.reshape(-1), table), table.reshape(q.shape)


def fixed_bits(context_width: int) -> float:
    """Bits a file spends outside its coefficients (header, range-coder flush, context weights: an estimate)."""
    return 8 * (bitstream.header_size() + SLACK_BYTES) + NETWORK_BITS_GUESS * sum(
        math.prod(s) for s in context.shapes(context_width))


def encode(samples: np.ndarray, sample_rate: int, options: SpectralOptions) -> SpectralEncoded:
    """(L, C) float samples in [−1, 1] → a version-3 audio file."""
    L, C = samples.shape
    N = options.frame
    coefficients = basis.analyse(samples.astype(np.float64), N)  # (C, F, N)
    budget = int(options.kbps * 1000 * L / sample_rate / 8)
    width = options.context_width
    overhead = 8 * (bitstream.header_size() + SLACK_BYTES)
    network_guess = fixed_bits(width) - overhead
    if 8 * budget < 1.2 * fixed_bits(width):
        raise SnfInputError(f"the rate is too low for {L / sample_rate:.3g} s of audio ({budget} bytes); ask "
                            f"for at least {1.2 * fixed_bits(width) * sample_rate / L / 1000:.3g} kbps")
    peak = float(np.abs(coefficients).max())
    smallest = max(peak / context.MAX_COEFFICIENT, 1e-12)
    top = math.log2(max(peak, 1e-12)) + 2  # log2 of a step that zeroes everything
    payload_budget = 8 * budget - overhead - network_guess

    transform = 0
    if C == 2 and options.mid_side is not False:
        ms = from_mid_side(coefficients)
        if options.mid_side:
            coefficients, transform = ms, 1
        else:  # compare the proxy rates at the step the plain channels need
            plain = _Search(coefficients, options.deadzone, smallest, 2.0 ** top)
            step = plain.run(lambda s: _proxy_bits(plain.q(s)), payload_budget, top - 8, *PROXY_SEARCH)
            if _proxy_bits(quantize(ms, step, options.deadzone)) < _proxy_bits(plain.q(step)):
                coefficients, transform = ms, 1
    search = _Search(coefficients, options.deadzone, smallest, 2.0 ** top)
    step = search.run(lambda s: _proxy_bits(search.q(s)), payload_budget, top - 8, *PROXY_SEARCH)

    start = time.perf_counter()
    generator = torch.Generator().manual_seed(options.seed)
    torch.manual_seed(options.seed)
    model = context.new_model(width, generator, float(np.abs(search.q(step)).mean()))
    for steps in options.steps:
        _train(model, search.q(step), steps, options.lr, generator)
        step = search.run(lambda s: _float_bits(model, search.q(s)), payload_budget, math.log2(step),
                          *FLOAT_SEARCH)
    fit_seconds = time.perf_counter() - start

    # Context weights: the step that spends fewest bits on weights and coefficients together.
    q = search.q(step)
    best = None
    for shift in CONTEXT_SHIFTS:
        weights = quantize_context(model, [shift] * 12)
        ctx = context.integer_model([w << shift for w in weights])
        symbols, codes = latent_coding.context_codes(weights, shift)
        total = _integer_bits(ctx, q)[0] + latent_coding.weights_bits(symbols, codes)
        if best is None or total < best[0]:
            best = (total, ctx, symbols, codes)
    _, ctx, symbols, codes = best
    fixed = overhead + latent_coding.weights_bits(symbols, codes)
    step = search.run(lambda s: _integer_bits(ctx, search.q(s))[0], 8 * budget - fixed, math.log2(step),
                      *EXACT_SEARCH)
    header = SpectralHeader(sample_rate, L, C, int(math.log2(N)), width, transform, step, tuple(codes))
    while True:
        q = search.q(step)
        encoder = latent_coding.new_encoder()
        latent_coding.encode_weights(encoder, symbols, codes)
        coding.encode_coefficients(encoder, q, _integer_bits(ctx, q)[1])
        data = bitstream.write(header, latent_coding.finish(encoder))
        if len(data) <= budget:
            break
        if step >= 2.0 ** top:
            raise SnfInputError(f"could not meet the rate target of {budget} bytes; ask for a higher rate")
        step = float(np.float32(step * 1.0005))  # the coder spent a few bytes more than the tables count
        header = SpectralHeader(sample_rate, L, C, int(math.log2(N)), width, transform, step, tuple(codes))
    return SpectralEncoded(data, step, fit_seconds, sum(options.steps))
