"""Encoding audio as a version-3 spectral field: the coefficients of the windowed-sinusoid basis (the field's
least-squares fit, :mod:`.basis`), quantized with one step, entropy-coded under a context model trained on
them, at exactly the rate asked for.

The rate-distortion choice: the basis is orthonormal, so the squared error is the coefficients' quantization
error and one step for every coefficient is what minimises it at a given rate (the reverse water-filling of a
Gaussian source: components below the step are zeroed). Rounding is biased towards zero by ``deadzone`` of a
step (a zero costs far fewer bits than a ±1; the offset is measured, ``docs/audio.md``). The step is searched
three times on the search material: with a per-component Laplace proxy, then with the float context model
trained at the proxy's step, then, after training again there, with the integer model on the exact table bits;
the range coder's last words are then confirmed by coding. A short file is its own search material, so the
search is exact; a long one (over SEARCH_COEFFICIENTS) searches on windows spread over it and then corrects
the step with passes over the whole file, window by window — memory for the samples and one window, time
linear in the duration.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterator

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
# Step searches (log2 step; the bracket moves out where it must): the proxy to 2^-7 of an octave (it only
# starts the training), the float model to 2^-8 (a 1 % rate error is about 1/30 of an octave).
PROXY_SEARCH = (8.0, 11)  # bracket half-width, bisection steps
FLOAT_SEARCH = (0.5, 7)
EXACT_FLOOR, EXACT_TRIES = 0.997, 8  # the exact stage: secant steps until within 0.3 % under the budget
CODING_TRIES = 4  # range-coding passes to land at or under the budget
BATCH = 1 << 13  # coefficients a training step sees (8192, 16384 and 32768 measured within 0.04 dB)
SEARCH_COEFFICIENTS = 1 << 21  # coefficients the search sees: ≈ 20 s of 48 kHz stereo
FULL_PASSES = 4  # step corrections over the whole of a long file
RATE_FLOOR = 0.985  # a long file's corrections stop once it is within 1.5 % under the target


@dataclass
class SpectralOptions:
    frame: int  # N: hop and component count (a power of two)
    kbps: float
    context_width: int = 12
    deadzone: float = 0.1
    steps: tuple[int, int] = (150, 100)  # context training steps at the first and the second step size
    lr: float = 1e-2
    mid_side: bool | None = None  # stereo only; None: whichever the proxy rate prefers
    seed: int = 0
    window: int = 1024  # frames a window (a power of two)


@dataclass
class SpectralEncoded:
    data: bytes
    step: float
    fit_seconds: float  # training the context model (with the float model's step searches)
    steps: int


def quantize(coefficients: np.ndarray, step: float, deadzone: float) -> np.ndarray:
    """Integers q with q·step ≈ c, rounded towards zero by ``deadzone`` of a step, within ±MAX_COEFFICIENT."""
    q = np.floor(np.abs(coefficients) / step + (0.5 - deadzone))
    return (np.sign(coefficients) * np.clip(q, 0, context.MAX_COEFFICIENT)).astype(np.int64)


def fixed_bits(context_width: int) -> float:
    """Bits a file spends outside its coefficients (header, range-coder flush, context weights: an estimate)."""
    return 8 * (bitstream.header_size() + SLACK_BYTES) + NETWORK_BITS_GUESS * sum(
        math.prod(s) for s in context.shapes(context_width))


def _proxy_bits(qs: list[np.ndarray]) -> float:
    """Bits under one zero-mean Laplace per component (the scale its mean magnitude): a context-free stand-in."""
    b = np.maximum(sum(np.abs(q).sum(axis=(0, 1)) for q in qs) / sum(q[..., 0].size for q in qs), 1e-3)
    log_b = torch.from_numpy(np.log(b))[None, None]
    return sum(float(laplace_bits(torch.from_numpy(q.astype(np.float64)), torch.zeros(()), log_b,
                                  context.FAMILY).sum()) for q in qs)


def _odd(shape) -> np.ndarray:
    return np.broadcast_to((np.arange(shape[1]) % 2 == 1)[None, :, None], shape).reshape(-1)


def _coded(q: np.ndarray) -> np.ndarray:
    """The part of a window that is coded: its active components."""
    return q[:, :, :coding.active(q)]


def _tensors(qs: list[np.ndarray]):
    """Features (n, 7) float32, odd-pass flags (n,) and values (n,) float32 of windows' coded coefficients."""
    qs = [_coded(q) for q in qs]
    x = torch.from_numpy(np.concatenate([context.all_features(q).reshape(-1, 7) for q in qs]).astype(np.float32))
    odd = torch.from_numpy(np.concatenate([_odd(q.shape) for q in qs]))
    return x, odd, torch.from_numpy(np.concatenate([q.reshape(-1) for q in qs]).astype(np.float32))


def _train(model, qs: list[np.ndarray], steps: int, lr: float, generator: torch.Generator) -> None:
    x, odd, y = _tensors(qs)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * s / steps))
        idx = torch.randint(len(y), (min(BATCH, len(y)),), generator=generator)
        loss = context.float_bits(model, x[idx], odd[idx], y[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _float_bits(model, qs: list[np.ndarray]) -> float:
    with torch.no_grad():
        return float(context.float_bits(model, *_tensors(qs)).sum())


def _integer_bits(ctx, q: np.ndarray, N: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Exact bits of one window (its component count and coded coefficients), the coded coefficients
    (C, F, K) and their tables (C, F, K)."""
    q = _coded(q)
    table = context.integer_tables(ctx, context.all_features(q).reshape(-1, 7), _odd(q.shape))
    return context.FAMILY.residual_bits(q.reshape(-1), table) + math.log2(N + 1), q, table.reshape(q.shape)


class _Search:
    """Bisection on log2 step of a monotone bits(step) for the finest step at or under a budget, on the search
    material ``coefficients`` (a list of windows, (C, W, N) each)."""

    def __init__(self, coefficients: list[np.ndarray], deadzone: float, lowest: float, highest: float):
        self.coefficients, self.deadzone = coefficients, deadzone
        self.lowest, self.highest = lowest, highest

    def q(self, step: float) -> list[np.ndarray]:
        return [quantize(c, step, self.deadzone) for c in self.coefficients]

    @staticmethod
    def step(log2_step: float) -> float:
        return float(np.float32(2.0 ** log2_step))

    def run(self, bits, budget: float, around: float, width: float, iterations: int) -> float:
        """The smallest step (float32-representable) with bits(q) ≤ budget, searched from [around ± width]
        (the bracket moves out, its stride doubling, until it holds the answer), then bisected ``iterations``
        times."""
        cost = lambda log2_step: bits(self.q(self.step(log2_step)))  # noqa: E731
        lo, hi = max(around - width, self.lowest), around + width
        while lo > self.lowest and cost(lo) <= budget:  # the answer is finer: move down, doubling the stride
            width *= 2
            lo, hi = max(lo - width, self.lowest), lo
        if cost(lo) <= budget:
            return self.step(lo)  # the finest step the format allows is under budget
        while cost(hi) > budget:  # coarser: move up, doubling the stride
            if hi > self.highest:  # every coefficient is zero and that is still too much
                raise SnfInputError("could not meet the rate target; ask for a higher rate")
            width *= 2
            lo, hi = hi, hi + width
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            if cost(mid) <= budget:
                hi = mid
            else:
                lo = mid
        return self.step(hi)


def _spread(count: int, limit: int) -> list[int]:
    """Up to ``limit`` of ``count`` windows, evenly spread (all when they fit)."""
    if count <= limit:
        return list(range(count))
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)}) if limit > 1 else [count // 2]


def encode(samples: np.ndarray, sample_rate: int, options: SpectralOptions) -> SpectralEncoded:
    """(L, C) float samples in [−1, 1] → a version-3 audio file."""
    L, C = samples.shape
    N, W, width = options.frame, options.window, options.context_width
    budget = int(options.kbps * 1000 * L / sample_rate / 8)
    if 8 * budget < 1.2 * fixed_bits(width):
        raise SnfInputError(f"the rate is too low for {L / sample_rate:.3g} s of audio ({budget} bytes); ask "
                            f"for at least {1.2 * fixed_bits(width) * sample_rate / L / 1000:.3g} kbps")
    frames = basis.frames(L, N)
    windows = list(coding.windows(frames, W))
    picked = _spread(len(windows), max(1, SEARCH_COEFFICIENTS // (C * W * N)))
    material = [basis.analyse(samples, N, *windows[i]) for i in picked]
    share = sum(m.size for m in material) / (C * frames * N)  # of the file's coefficients the search sees
    loudest = max(float(np.abs(samples[i:i + (1 << 20)]).max()) for i in range(0, L, 1 << 20))  # no full copy
    peak = max(loudest, 1e-9) * 2 * math.sqrt(2 * N)  # bounds |coefficient|
    lowest = math.log2(max(float(max(np.abs(m).max() for m in material)), 1e-12) / context.MAX_COEFFICIENT)
    top = math.log2(peak) + 2  # log2 of a step that zeroes everything
    overhead = 8 * (bitstream.header_size() + SLACK_BYTES)
    search_budget = share * (8 * budget - fixed_bits(width))

    search = _Search(material, options.deadzone, lowest, top)
    step = search.run(_proxy_bits, search_budget, top - 8, *PROXY_SEARCH)
    transform = 0
    if C == 2 and options.mid_side is not False:
        ms = _Search([from_mid_side(m) for m in material], options.deadzone, lowest, top)
        # mid/side where asked, or where its proxy rate at the plain channels' step is lower
        if options.mid_side or _proxy_bits(ms.q(step)) < _proxy_bits(search.q(step)):
            search, transform = ms, 1
            step = search.run(_proxy_bits, search_budget, math.log2(step), *FLOAT_SEARCH)
    material = search.coefficients

    start = time.perf_counter()
    generator = torch.Generator().manual_seed(options.seed)
    torch.manual_seed(options.seed)
    model = context.new_model(width, generator, float(np.mean([np.abs(q).mean() for q in search.q(step)])))
    for steps in options.steps:
        _train(model, search.q(step), steps, options.lr, generator)
        step = search.run(lambda qs: _float_bits(model, qs), search_budget, math.log2(step), *FLOAT_SEARCH)
    fit_seconds = time.perf_counter() - start

    # Context weights: the step that spends fewest bits on weights and coefficients together.
    qs = search.q(step)
    best = None
    for shift in CONTEXT_SHIFTS:
        weights = quantize_context(model, [shift] * 12)
        ctx = context.integer_model([w << shift for w in weights])
        symbols, codes = latent_coding.context_codes(weights, shift)
        total = sum(_integer_bits(ctx, q, N)[0] for q in qs) / share + latent_coding.weights_bits(symbols, codes)
        if best is None or total < best[0]:
            best = (total, ctx, symbols, codes)
    _, ctx, symbols, codes = best
    fixed = overhead + latent_coding.weights_bits(symbols, codes)
    exact = lambda s: sum(_integer_bits(ctx, q, N)[0] for q in search.q(s))  # noqa: E731
    step = _correct(step, exact, share * (8 * budget - fixed), EXACT_FLOOR, EXACT_TRIES)

    def window_q(step: float) -> Iterator[np.ndarray]:
        """Every window's coefficients at ``step``, analysed as they are needed."""
        for i, (first, stop) in enumerate(windows):
            c = material[i] if share == 1 else basis.analyse(samples, N, first, stop)
            yield quantize(from_mid_side(c) if transform and share < 1 else c, step, options.deadzone)

    def whole_bits(step: float) -> float:
        return sum(_integer_bits(ctx, q, N)[0] for q in window_q(step))

    target = 8 * budget - fixed
    if share < 1:  # the search saw part of the file: correct the step on the whole of it
        step = _correct(step, whole_bits, target, RATE_FLOOR, FULL_PASSES)
    for _ in range(CODING_TRIES):
        header = SpectralHeader(sample_rate, L, C, int(math.log2(N)), int(math.log2(W)), width, transform, step,
                                tuple(codes))
        encoder = latent_coding.new_encoder()
        latent_coding.encode_weights(encoder, symbols, codes)
        for q in window_q(step):
            coding.encode_window(encoder, *_integer_bits(ctx, q, N)[1:], N)
        data = bitstream.write(header, latent_coding.finish(encoder))
        if len(data) <= budget:
            break
        # The coder spent more than the tables count (its probabilities are quantized): aim lower by as much.
        target -= 8 * (len(data) - budget) + 64
        step = _correct(step, whole_bits, target, EXACT_FLOOR if share == 1 else RATE_FLOOR, EXACT_TRIES)
    else:
        raise SnfInputError(f"could not meet the rate target of {budget} bytes; ask for a higher rate")
    return SpectralEncoded(data, step, fit_seconds, sum(options.steps))


def _correct(step: float, bits, budget: float, floor: float, tries: int) -> float:
    """Secant steps on log2 step (bits fall smoothly as the step grows) aiming just under ``budget``: the
    finest step found whose bits are at or under it, stopping once they are within ``floor`` of it or after
    ``tries`` evaluations; if none was under, coarser steps until one is."""
    aim = 0.5 * (1 + floor) * budget
    x0, b0 = math.log2(step), bits(step)
    best = step if b0 <= budget else None
    x1 = x0 + (0.05 if b0 > budget else -0.05)
    for _ in range(tries):
        if floor * budget <= b0 <= budget:
            break
        step1 = _Search.step(x1)
        b1 = bits(step1)
        if b1 <= budget and (best is None or step1 < best):
            best = step1
        slope = (b1 - b0) / (x1 - x0) if b1 != b0 and x1 != x0 else -budget
        x0, b0, x1 = x1, b1, x1 + float(np.clip((aim - b1) / slope, -1.0, 1.0))
    while best is None:  # still over: coarser until under
        x0 += 0.05
        if bits(_Search.step(x0)) <= budget:
            best = _Search.step(x0)
    return best
