"""Encoding an image as a version-3 latent field: train (:mod:`.train`), then quantize the networks, code the
latents with the integer context model, and meet the rate exactly.

Rate control: training's λ follows the target (:mod:`.train`), which lands the estimate near it; here the
exact size is then brought to at or under the target by moving latents one step towards their predicted centre
where that saves the most bits for the least distortion (a slope searched by bisection on the bits the tables
give, then confirmed by coding). The dead zone that came before moved the latents half a step from their centre
first, which save nothing: a 2,000-step fit 1.1 % over its budget lost 7.7 dB to it (docs/latent.md); it stays
as the fallback where one step each is not enough.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from ..errors import SnfInputError
from . import bands, bitstream, coding, tables
from .bitstream import LatentHeader
from .coding import TensorCode
from .context import ContextModel, IntegerContext, quantize_context
from .field import LatentConfig, LatentField, network_size
from .synthesis import run
from .train import TrainOptions, TrainReport, train, train_batch

CONTEXT_SHIFTS = (0, 1, 2, 3, 4)  # candidate context-weight steps 2^(shift - 8)
SYNTH_EXPONENTS = tuple(range(4, 13))  # candidate synthesis steps 2^-q
NETWORK_BITS_GUESS = 8.0  # bits a network parameter costs, for training's rate estimate
DEADZONE_MAX = 2.0
DEADZONE_RESOLUTION = 2.0 ** -20  # fine: trained latents pile up at rounding boundaries
SLOPE_RANGE = (1e-9, 1e3)  # distortion (sum of squared [0, 1] pixel errors) a bit the trim may pay
SLOPE_RESOLUTION = 1.01  # ratio at which its search stops
SLOPE_BRACKET = 8.0  # factor by which the search widens its bracket from its guess
TRIM_TOLERANCE = 1e-3  # ... or stops once within this share of the room (0.5 bpp at 768×512: 25 bytes)
SENSITIVITY_PROBES = 2  # random projections that estimate each level's distortion per squared latent step
SLACK_BYTES = 8  # the range coder's flush (two words) over the bits the tables count


@dataclass
class LatentOptions:
    config: LatentConfig
    steps: int
    bpp: float | None = None  # whole-file target; None: ``lmbda``
    lmbda: float | None = None
    alpha: tuple[float, float] = (1.0, 1.0)  # weight scaling of the sine synthesis (first, hidden layers)
    lr_latent: float = 0.1
    lr_network: float = 0.02
    noise_fraction: float = 0.75
    seed: int = 0
    max_seconds: float | None = None
    progress: bool = False
    row_stride: int = 1
    quantizer: str = "softround"
    temperature: tuple[float, float] = (0.3, 0.3)
    compile: bool = False  # the training step compiled (:mod:`.fused`)
    device: str = "cpu"  # where training runs; quantization, coding and the rate trim always run on the CPU


@dataclass
class LatentEncoded:
    data: bytes
    report: TrainReport
    deadzone: float  # the fallback trim's (0: not needed)
    slope: float  # the trim's distortion a bit (0: plain rounding fitted)
    fit_seconds: float


def _synthesis_codes(tensors: list[torch.Tensor], exponent: int) -> tuple[list[np.ndarray], list[TensorCode]]:
    symbols, codes = [], []
    for t in tensors:
        k = np.clip(np.rint(t.detach().double().numpy().ravel() * 2.0 ** exponent), -32768, 32767).astype(np.int64)
        symbols.append(k)
        codes.append(TensorCode(exponent, tables.fit_scale_index(k), int(k.min()), int(k.max())))
    return symbols, codes


def _integer_context(model: ContextModel, shift: int) -> tuple[list[np.ndarray], IntegerContext]:
    """The context weights quantized with step 2^(shift − 8), and the integer model they make."""
    weights = quantize_context(model, [shift] * 12)
    return weights, IntegerContext([w << shift for w in weights])


def _context_choice(model: ContextModel, shapes, latents, keep: bool = True) -> tuple:
    """The context-weight step that spends fewest bits on weights and latents together: (integer model, weight
    symbols, weight codes, weight bits, plain latent pass). The candidates' passes are only counted, and the
    winner's coded again if ``keep`` (one pass in memory at a time: 0.4 GB of a 12 MP photo's peak)."""
    best, best_total = None, None
    for shift in CONTEXT_SHIFTS:
        weights, ctx = _integer_context(model, shift)
        plain = _latent_pass(shapes, ctx, latents, keep=False)
        ctx_symbols, ctx_codes = coding.context_codes(weights, shift)
        ctx_bits = coding.weights_bits(ctx_symbols, ctx_codes)
        if best is None or plain[2] + ctx_bits < best_total:
            best, best_total = (ctx, ctx_symbols, ctx_codes, ctx_bits, plain), plain[2] + ctx_bits
    if keep:
        best = best[:4] + (_latent_pass(shapes, best[0], latents),)
    return best


def _synthesis_choice(field: LatentField, grids, target: torch.Tensor, lmbda: float, rows=None) -> tuple:
    """The synthesis step 2^-q with the least MSE + λ · bpp on the rounded latents ``grids`` (MSE on ``rows``
    only, if given): (symbols, codes, bits)."""
    H, W, C = target.shape
    up = bands.upsampler(field.shapes, H, W, torch.float64, field.config.first)
    levels = [torch.tensor(np.asarray(g), dtype=torch.float64) for g in grids]
    candidates = []
    for q in SYNTH_EXPONENTS:
        symbols, codes = _synthesis_codes(field.synthesis.tensors(), q)
        tensors = [torch.tensor(bitstream.dequantize_synthesis(s, c)).reshape(t.shape)
                   for s, c, t in zip(symbols, codes, field.synthesis.tensors())]
        candidates.append((symbols, codes, tensors))
    sse, count = np.zeros(len(candidates)), 0
    for part in bands.row_bands(rows, H, W):
        x = up(levels, part).reshape(-1, len(field.shapes))
        want = (target if part is None else target[part]).reshape(-1, C).double()
        count += want.numel()
        with torch.no_grad():
            for k, (_, _, tensors) in enumerate(candidates):
                sse[k] += float(torch.sum((run(tensors, field.config.activation, x).clamp(0, 1) - want) ** 2))
    best = None
    for (symbols, codes, _), error in zip(candidates, sse):
        bits = coding.weights_bits(symbols, codes)
        cost = error / count + lmbda * bits / (H * W)
        if best is None or cost < best[0]:
            best = (cost, symbols, codes, bits)
    return best[1:]


def _file_bits(field: LatentField, target: torch.Tensor):
    """Training's calibration (train.TrainOptions.exact_bits): what the file would spend on the rounded latents
    and outside them (networks quantized as :func:`encode` does, the synthesis step chosen on every fourth row).
    ``target`` is on the CPU; a field trained on another device is measured from a CPU copy, as it will be coded."""
    def exact(grids: list[torch.Tensor], lmbda: float) -> tuple[float, float]:
        here = field if next(field.parameters()).device.type == "cpu" else copy.deepcopy(field).cpu()
        latents = [g.detach().cpu().double().numpy() for g in grids]
        *_, ctx_bits, plain = _context_choice(here.context, here.shapes, latents, keep=False)
        syn_bits = _synthesis_choice(here, latents, target, lmbda, torch.arange(0, target.shape[0], 4))[2]
        return plain[2], ctx_bits + syn_bits + _overhead_bits(field.config)
    return exact


def _sensitivity(field: LatentField, grids, target: torch.Tensor) -> np.ndarray:
    """Per level, the distortion (sum of squared [0, 1] pixel errors) a unit change of one latent causes, on
    average: E‖∂out/∂y‖² by random ±1 projections of the output (Hutchinson), on the latents ``grids``."""
    H, W, C = target.shape
    up = bands.upsampler(field.shapes, H, W, first=field.config.first)
    ys = [torch.tensor(np.asarray(g, dtype=np.float32)) for g in grids]
    sums = [[torch.zeros_like(y) for y in ys] for _ in range(SENSITIVITY_PROBES)]  # J^T v, per probe and level
    generator = torch.Generator().manual_seed(0)
    with torch.enable_grad():
        for part in bands.row_bands(None, H, W):
            x, leaves, spans = bands.read(up, ys, part, True)
            out = field.synthesis(x)
            for k in range(SENSITIVITY_PROBES):
                v = torch.randint(0, 2, out.shape, generator=generator).to(out.dtype) * 2 - 1
                grads = torch.autograd.grad(out, leaves, v, retain_graph=k < SENSITIVITY_PROBES - 1)
                for total, g, (lo, hi) in zip(sums[k], grads, spans):
                    total[lo:hi] += g
    return np.mean([[float(g.double().pow(2).mean()) for g in probe] for probe in sums], axis=0)


def _trim(shapes, ctx: IntegerContext, latents, weights: np.ndarray, room: float,
          guess: float) -> tuple[float, float, tuple | None]:
    """The cheapest latent pass of at most ``room`` bits where plain rounding takes more: (dead zone, slope, pass).
    The smallest slope (:func:`coding.encoder_chooser`) whose pass fits, to SLOPE_RESOLUTION or to within
    TRIM_TOLERANCE of the room: bracketed from ``guess`` by factors of SLOPE_BRACKET, then closed by the Illinois
    variant of regula falsi on the bits against log slope (bits fall convexly there: plain interpolation crept up
    from one side). Else the smallest dead zone; (DEADZONE_MAX, 0, None) if nothing fits. The trials are only
    counted, ≈ 0.09 s each at 768×512 (a bisection over SLOPE_RANGE took 14; this 2–7, docs/latent.md); the
    choice is coded again."""
    def bits(slope: float) -> float:
        return _latent_pass(shapes, ctx, latents, slope=slope, weights=weights, keep=False)[2]

    bottom, top = SLOPE_RANGE
    lo, hi = bottom, top  # the pass is over the room at lo and within it at hi
    f_lo = f_hi = None  # their bits less the aim, once counted
    aim = room * (1 - TRIM_TOLERANCE / 2)  # interpolate just under the room, so that the new point tends to fit
    near = room - aim
    slope, last = min(max(guess, bottom), top), None
    while True:
        f = bits(slope) - aim
        if f <= near:
            hi, f_hi = slope, f
            if last == "hi" and f_lo is not None:  # Illinois: the end that stays still counts half
                f_lo /= 2
            last = "hi"
            if hi / lo <= SLOPE_RESOLUTION or f >= -near or hi <= bottom:
                break
        else:
            lo, f_lo = slope, f
            if last == "lo" and f_hi is not None:
                f_hi /= 2
            last = "lo"
            if lo >= top:
                deadzone, chosen = _deadzone(shapes, ctx, latents, room)
                return deadzone, 0.0, chosen
            if f_hi is not None and hi / lo <= SLOPE_RESOLUTION:
                break
        if f_hi is None:  # nothing fits yet: widen upwards
            slope = min(lo * SLOPE_BRACKET, top)
        elif f_lo is None:  # everything fits so far: widen downwards
            slope = max(hi / SLOPE_BRACKET, bottom)
        else:
            slope = lo * (hi / lo) ** min(max(f_lo / (f_lo - f_hi), 0.1), 0.9)
    return 0.0, hi, _latent_pass(shapes, ctx, latents, slope=hi, weights=weights)


def _deadzone(shapes, ctx: IntegerContext, latents, room: float):
    """The smallest dead zone (to DEADZONE_RESOLUTION) whose latent pass takes at most ``room`` bits, and that pass;
    (DEADZONE_MAX, None) if none does."""
    def fits(deadzone: float) -> bool:
        return _latent_pass(shapes, ctx, latents, deadzone, keep=False)[2] <= room

    lo, hi = 0.0, DEADZONE_MAX
    if not fits(hi):
        return hi, None
    while hi - lo > DEADZONE_RESOLUTION:
        mid = 0.5 * (lo + hi)
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi, _latent_pass(shapes, ctx, latents, hi)


def _latent_pass(shapes, context: IntegerContext, latents, deadzone: float = 0.0, slope: float = 0.0,
                 weights=None, keep: bool = True) -> tuple[list[np.ndarray] | None, list | None, float]:
    """The latents coded with ``context`` → (their integer grids, (residuals, tables) of each pass, bits); with
    ``keep`` False only the bits (the other two None)."""
    tally = _Tally(keep)
    grids = coding.walk(shapes, context, coding.encoder_chooser(latents, tally, deadzone, slope, weights))
    return (grids if keep else None), (tally.record if keep else None), tally.bits


class _Tally:
    """What :func:`coding.encoder_chooser` records: the bits the tables count, and the passes if ``keep``."""

    def __init__(self, keep: bool):
        self.bits, self.record = 0.0, [] if keep else None

    def append(self, item: tuple[np.ndarray, np.ndarray]) -> None:
        self.bits += tables.LATENT.residual_bits(*item)
        if self.record is not None:
            self.record.append(item)


def _overhead_bits(config: LatentConfig) -> int:
    """The header and the range coder's flush."""
    return 8 * (bitstream.header_size(config) + SLACK_BYTES)


def fixed_bits(config: LatentConfig, C: int) -> float:
    """Bits a C-channel file spends outside its latents (header, range-coder flush, networks: an estimate)."""
    return network_size(config, C) * NETWORK_BITS_GUESS + _overhead_bits(config)


def encode(pixels: np.ndarray, layout_code: int, options: LatentOptions) -> LatentEncoded:
    """(H, W, C) uint8 → a version-3 file."""
    s = _start(pixels, options)
    device = torch.device(options.device)
    s.field.to(device)  # the same start on every device: drawn on the CPU above
    start = time.perf_counter()
    report = train(s.field, s.target.to(device),
                   _train_options(options, s.network_bits, _file_bits(s.field, s.target)))
    fit_seconds = time.perf_counter() - start
    s.field.cpu()
    return _finish(s.field, s.target, s.budget, layout_code, report, options, fit_seconds)


def encode_batch(images: list[np.ndarray], layout_code: int,
                 options: LatentOptions) -> list[LatentEncoded | SnfInputError]:
    """B images of one shape (H, W, C) uint8 → their version-3 files, trained together (:func:`.train.train_batch`:
    each field from the start, learning rates and rate rule of a one-image encode, in one batched step); then
    each coded alone, as :func:`encode` does. An image whose rate cannot be met gets its error, not the batch.
    ``fit_seconds`` of each is the batch's training time shared equally."""
    started = [_start(pixels, options) for pixels in images]
    device = torch.device(options.device)
    for s in started:
        s.field.to(device)
    start = time.perf_counter()
    targets = torch.stack([s.target for s in started]).to(device)
    network_bits = started[0].network_bits  # one shape: one size
    reports = train_batch([s.field for s in started], targets, _train_options(options, network_bits, None),
                          [_file_bits(s.field, s.target) for s in started])
    fit_seconds = (time.perf_counter() - start) / len(images)
    out = []
    for s, report in zip(started, reports):
        s.field.cpu()
        try:
            out.append(_finish(s.field, s.target, s.budget, layout_code, report, options, fit_seconds))
        except SnfInputError as exc:
            out.append(exc)
    return out


class _Start(NamedTuple):
    """What a fit starts from: the new field (drawn from the seed on the CPU), the target (H, W, C) float32 in
    [0, 1], the byte budget (None: λ given) and the file's bits outside its latents (:func:`fixed_bits`)."""
    field: LatentField
    target: torch.Tensor
    budget: int | None
    network_bits: float


def _start(pixels: np.ndarray, options: LatentOptions) -> _Start:
    """The start of a fit of (H, W, C) uint8 ``pixels``; refuses a rate too low for the networks."""
    H, W, C = pixels.shape
    torch.manual_seed(options.seed)
    field = LatentField(H, W, C, options.config, options.alpha, torch.Generator().manual_seed(options.seed))
    target = torch.from_numpy(pixels.astype(np.float32) / 255.0)
    budget = None if options.bpp is None else int(options.bpp * H * W / 8)
    network_bits = fixed_bits(options.config, C)
    if budget is not None and 8 * budget < 1.2 * network_bits:
        raise SnfInputError(f"the rate is too low for a {W}x{H} image ({budget} bytes); ask for at least "
                            f"{1.2 * network_bits / (H * W):.3g} bpp")
    return _Start(field, target, budget, network_bits)


def _train_options(options: LatentOptions, network_bits: float, exact_bits) -> TrainOptions:
    return TrainOptions(
        options.steps, options.lr_latent, options.lr_network, options.noise_fraction, options.lmbda,
        options.bpp, network_bits, exact_bits, max_seconds=options.max_seconds,
        progress=options.progress, row_stride=options.row_stride, quantizer=options.quantizer,
        temperature=options.temperature, compile=options.compile)


def _finish(field: LatentField, target: torch.Tensor, budget: int | None, layout_code: int, report: TrainReport,
            options: LatentOptions, fit_seconds: float) -> LatentEncoded:
    """A trained field (on the CPU) → its file: the networks quantized, the latents coded, the rate met."""
    H, W, C = target.shape
    config = options.config
    lmbda = report.lmbda if options.lmbda is None else options.lmbda
    latents = [g.detach().double().numpy() for g in field.grids]
    shapes = field.shapes

    ctx, ctx_symbols, ctx_codes, ctx_bits, plain = _context_choice(field.context, shapes, latents)
    grids = plain[0]
    syn_symbols, syn_codes, syn_bits = _synthesis_choice(field, grids, target, lmbda)
    outside = syn_bits + ctx_bits + _overhead_bits(config)

    def size(latent_pass: tuple) -> int:
        return math.ceil((outside + latent_pass[2]) / 8)

    deadzone, slope, chosen = 0.0, 0.0, plain  # chosen: the (grids, record, bits) of the latents coded
    weights = None
    limit = budget  # bytes the tables may count: the budget, less what the coder spent over them
    header = LatentHeader(H, W, C, layout_code, config, tuple(syn_codes), tuple(ctx_codes))
    while True:
        if limit is not None and size(chosen) > limit:
            weights = _sensitivity(field, grids, target) if weights is None else weights
            room = 8 * limit - outside  # bits the latents may take: size(p) <= limit
            # training traded a bit for λ·C of squared error; the trims measured landed at 0.2–1 × half that
            deadzone, slope, chosen = _trim(shapes, ctx, latents, weights, room, lmbda * C / 2)
            if chosen is None:
                raise SnfInputError(f"could not meet the rate target of {budget} bytes; ask for a higher rate")
        encoder = coding.new_encoder()
        coding.encode_weights(encoder, syn_symbols + ctx_symbols, syn_codes + ctx_codes)
        for residuals, table in chosen[1]:
            tables.LATENT.encode(encoder, residuals, table)
        data = bitstream.write(header, coding.finish(encoder))
        if budget is None or len(data) <= budget:
            break
        limit = min(limit, size(chosen)) - (len(data) - budget)  # the coder spent a few bytes more
    return LatentEncoded(data, report, deadzone, slope, fit_seconds)
