"""Training a latent field on rate + distortion: loss = MSE (pixels in [0, 1]) + λ · bits per pixel.

Quantization schedule: for the first ``noise_fraction`` of the steps a differentiable stand-in for rounding;
then the latents are rounded and fixed, and the last steps train the synthesis and context networks on the
decoder's latents. (Straight-through rounding of the latents in that stage let the distortion push many of them
across ±½ where the rounded rate has no gradient: the rate climbed 20 % over the target within 60 steps on one
photo, and the dead zone that trimmed it cost 3.5 dB; fixing them gained 0.4–0.5 dB besides, docs/latent.md.)
The stand-in is C3's (Kim et al., CVPR 2024): soft rounding s_T (Agustsson & Theis 2020) around noise,
s_T(s_T(y) + n), n from a Kumaraswamy law that starts peaked and ends uniform on (−½, ½) — the values the rate
is charged for then sit near integers, as the coded ones do. Plain additive uniform noise (``"noise"``) left
some fits far from their rate at the end of training, and wider synthesis networks collapsed (docs/latent.md).
Adam (β₂ = 0.99) with one learning rate for the latents and another for the networks, both on a cosine schedule.

With a rate target, λ follows the rate of the *rounded* latents (the noisy ones cost far more under the same
model: 0.41 against 0.16 bpp measured on a 768×512 photo, so a controller on the noisy rate lands 2–3× under
target): every ``CONTROL_EVERY`` steps log λ moves by ``LAMBDA_GAIN`` × the relative excess of a running mean
of that rate, extrapolated ``RATE_LOOKAHEAD`` periods along its last change, over ``CONTROL_MARGIN`` × the
target. (Without the look-ahead λ kept rising while the rate was already falling through the target, and with
the latents fixed in the last stage the rate could not come back: two of three photos at 1 bpp ended 4.5 %
under.) Runs shorter than ``CONTROL_STEPS`` update λ proportionally more often: at 300 steps with updates every
4, λ was still 2 % over at the switch on three of four photos at 1 bpp, and the dead zone that trimmed the fixed
latents cost up to 10 dB.

The rate a file codes is not the float rate (the integer context model codes 1–2 % more, and the networks'
bits were a guess of 8 a parameter: 2,300 bits too many, 2.4 % of 0.25 bpp, on a 768×512 photo), and the encoder
can only trim fixed, whole-step latents with a dead zone, which is costly: a 2,000-step fit that converged on a
float goal 2 % over the target ended 2.3 % over its budget, and the trim cost 8 dB (a dead zone of 0.70; on the
latents of the soft stage, which sit near integers, a trim at the switch cost as much). So, once,
``CALIBRATE_BEFORE`` of the schedule before the switch, the caller's ``exact_bits`` measures what the file would
spend on the rounded latents and outside them; the controller scales its latent estimate by that ratio and counts
the measured network bits from then on. It aims ``CONTROL_MARGIN`` over the target because the fixed latents'
rate still falls 1–2 % in the last stage as the context model learns them (aiming at the target itself, files
landed 2.5–4 % under it at the default effort; 2 % over: 1–1.8 % under). Since the encoder trims an overshoot
cheaply (one step towards the centre where bits are cheapest, :mod:`.encoder`), it aims 4 % over: default-effort
files 0.3–0.03 % under instead of 1–0.01 %, +0.025 dB on average over six, and the fast effort at 0.25 bpp 1.8–2.3 %
under instead of 3.8–4.4 % (+0.05 / +0.09 dB; docs/latent.md). Runs shorter than CONTROL_STEPS aim
proportionally higher, up to twice (8 % at the fast effort's 300 steps: +0.02 to +0.13 dB on five photo-rate cases at the same
or a closer rate; one file still 4.8 % under, where it was 7.6 %).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from . import bands, fused
from .context import StackedContext, columns_bits, pyramid_bits, pyramid_bits_sampled, pyramid_columns
from .field import LatentField
from .synthesis import run

CONTROL_EVERY = 4  # steps between λ updates in a run of CONTROL_STEPS steps or more; shorter runs update
CONTROL_STEPS = 600  # proportionally more often, so that λ moves as far per share of the schedule
CALIBRATE_BEFORE = 0.2  # share of the schedule before the switch at which the exact rate is measured
LAMBDA_GAIN = 0.15
# The controller counts the rounded latents' bits with the finest level's positions sampled every
# CONTROL_SAMPLING-th (:func:`~.context.pyramid_bits_sampled`): that count needs no gradient, is averaged by
# RATE_MEMORY, and at the fast effort ran every second step. Measured at 768×512, 0.5 bpp (docs/latent.md): fast
# encodes 26.1–27.8 → 24.6–25.9 s, default ones within the VM's noise, the files within ±0.012 dB.
CONTROL_SAMPLING = 4
CONTROL_MARGIN = 1.04
RATE_MEMORY = 0.5  # running mean of the rounded rate
RATE_LOOKAHEAD = 5  # the controller acts on the running mean extrapolated this many control periods ahead
LAMBDA_RANGE = (1e-6, 1.0)
# Adam's second-moment memory of 100 steps instead of 1,000: in runs of a few hundred steps the default kept the
# early, large gradients in the step size for most of the run. Measured at 768×512, 600 steps (docs/latent.md):
# +0.09 to +0.16 dB at 0.5 bpp, +0.11 / +0.24 at 1 bpp and +0.09 / +0.14 at 0.25 on training-side photos, at the
# same rate; at the fast effort and 0.25 bpp one photo landed 7.6 % under its target (−0.11 dB).
ADAM_BETAS = (0.9, 0.99)


# Runs of at most SHORT_RUN_STEPS steps (the fast effort's 300) start λ SHORT_RUN_LAMBDA times higher at rates in
# SHORT_RUN_LAMBDA_BPP (above the lower bound, up to the upper): from the rule's λ their rate overshot early (the
# astronaut at 2 bpp: 2.7 bpp at step 50, λ 7× up) and 300 steps left λ too little time to come back, files
# 0.80–0.98 of the target. Measured with batched fits of training-side crops (docs/latent.md, tenth session), mean
# dB × 1 → × 3: eight 256×256 at 1.5 / 2 / 3 bpp +0.21 / +0.34 / +0.27 (4 bpp −0.09: those files land under
# their target already), sixteen 128×128 at 2 bpp +0.26, the six 128×128 samples +0.15; three 768×512 at 2 bpp
# +0.12 (ninth session). The default effort at 2 bpp moved by −0.01 dB (three 256×256): unchanged there.
SHORT_RUN_STEPS = 300
SHORT_RUN_LAMBDA = 3.0
SHORT_RUN_LAMBDA_BPP = (1.0, 3.0)


def initial_lambda(bpp: float, steps: int | None = None) -> float:
    """λ to start from for ``bpp``; the controller corrects it. Cool-chic's published λ–rate pairs on Kodak
    (4e-3 → 0.22 bpp, 1e-3 → 0.48, 4e-4 → 0.76, 1e-4 → 1.36: λ ≈ 1e-3 · (bpp / 0.48)^-2) fit converged
    10k-step fields; ours end near that λ at 0.25 bpp but ≈ 3–10× above it at 1 bpp, and a start that low made the
    rounded rate overshoot to 1.8 bpp and λ 40× up and back, still coming down at the switch (300 steps: files
    2–4 % under, −0.25 dB). So: that λ up to 0.25 bpp, ∝ 1/bpp above (at 1 bpp +0.08–0.19 dB at 600 steps,
    +0.25–0.29 at 300; at 0.5 bpp within ±0.04 dB). Runs of ``steps`` ≤ SHORT_RUN_STEPS start higher above 1 bpp
    (above)."""
    cool_chic = 1e-3 * (bpp / 0.48) ** -2
    lmbda = max(cool_chic, 1e-3 * (0.25 / 0.48) ** -2 * 0.25 / bpp)
    lo, hi = SHORT_RUN_LAMBDA_BPP
    if steps is not None and steps <= SHORT_RUN_STEPS and lo < bpp <= hi:
        lmbda *= SHORT_RUN_LAMBDA
    return float(np.clip(lmbda, *LAMBDA_RANGE))


@dataclass
class TrainOptions:
    steps: int
    lr_latent: float = 0.1
    lr_network: float = 0.02
    noise_fraction: float = 0.75
    lmbda: float | None = None  # fixed λ; None: follow target_bpp
    target_bpp: float | None = None  # bits per pixel the latents and networks should use together
    network_bits: float = 0.0  # estimated bits of the networks (counted in the rate, not trained on)
    # (rounded latents, λ) → the bits the file would spend on them and outside them; None: trust the float rate
    exact_bits: Callable[[list[torch.Tensor], float], tuple[float, float]] | None = None
    max_seconds: float | None = None
    progress: bool = False
    row_stride: int = 1  # distortion on every row_stride-th row a step (random offset): a cheaper, unbiased step
    quantizer: str = "softround"  # "noise": y + U(−½, ½); "softround": s_T(s_T(y) + n), n Kumaraswamy noise
    temperature: tuple[float, float] = (0.3, 0.3)  # softround temperature at the start and end of the soft stage
    compile: bool = False  # the step's rate and distortion compiled (:mod:`.fused`), whole or band by band
    kumaraswamy: tuple[float, float] = (2.0, 1.0)  # noise shape a (1: uniform) at the start and end


@dataclass
class TrainReport:
    steps: int
    seconds: float
    lmbda: float
    psnr: float  # of the last step's (rounded or noisy) output, on [0, 1] pixels
    bpp: float  # the last step's rate estimate, networks included
    history: list = field(default_factory=list)  # (step, seconds, psnr, bpp, λ, rounded-rate mean) every 10 steps


class RateControl:
    """λ of B fits trained together (B = 1 for one), each following the rate of its rounded latents to the
    target (the module's rule: a running mean, a look-ahead, a margin over the target, one calibration on the
    file's exact count); with a λ given, λ stays."""

    def __init__(self, options: TrainOptions, pixels: int, exact_bits: list[Callable] | None, batch: int = 1):
        steps = options.steps
        self.options, self.pixels, self.exact_bits = options, pixels, exact_bits
        self.every = max(1, min(CONTROL_EVERY, round(CONTROL_EVERY * steps / CONTROL_STEPS)))
        # shorter runs end further under (the fixed latents' rate falls more in their last stage): aim higher, up
        # to twice as high (measured at 300 steps)
        self.margin = 1 + (CONTROL_MARGIN - 1) * min(2.0, max(1.0, CONTROL_STEPS / max(1, steps)))
        first = options.lmbda if options.lmbda is not None else initial_lambda(options.target_bpp, steps)
        self.lmbda = np.full(batch, float(first))
        self.network_bits = np.full(batch, float(options.network_bits))  # until calibrated
        self.scale = None  # exact / float latent bits, once calibrated
        self.rate_mean = None

    def due(self, step: int) -> bool:
        """Whether λ is updated after this step."""
        return self.options.lmbda is None and step % self.every == 0

    def calibrating(self, frac: float) -> bool:
        """Whether the rounded latents should be counted exactly now and measured as the file would spend them."""
        return (self.scale is None and self.exact_bits is not None
                and frac >= self.options.noise_fraction - CALIBRATE_BEFORE)

    def calibrate(self, grids: list[torch.Tensor]) -> list[tuple[float, float]]:
        """Each fit's (exact latent bits, bits outside the latents) of the rounded latents ``grids`` (levels, each
        with the batch axis)."""
        return [exact([g[b] for g in grids], float(self.lmbda[b])) for b, exact in enumerate(self.exact_bits)]

    def bpp(self, bits: np.ndarray) -> np.ndarray:
        """Rate (B,) of latent ``bits`` (B,) with the networks' bits."""
        return (bits + self.network_bits) / self.pixels

    def update(self, latent_bits: np.ndarray, calibration: list[tuple[float, float]] | None = None) -> None:
        """λ after a count of the rounded latents' bits (B,) (with ``calibration`` of the same latents, once)."""
        if calibration is not None:
            exact, self.network_bits = (np.array(v, dtype=np.float64) for v in zip(*calibration))
            self.scale = exact / np.maximum(latent_bits, 1.0)
        rounded = self.bpp((1.0 if self.scale is None else self.scale) * latent_bits)
        previous = self.rate_mean
        self.rate_mean = rounded if previous is None else RATE_MEMORY * previous + (1 - RATE_MEMORY) * rounded
        goal = self.margin * self.options.target_bpp
        ahead = self.rate_mean if previous is None else self.rate_mean + RATE_LOOKAHEAD * (self.rate_mean - previous)
        excess = np.clip((ahead - goal) / goal, -1, 1)
        self.lmbda = np.clip(self.lmbda * np.exp(LAMBDA_GAIN * excess), *LAMBDA_RANGE)


def _steps(bar, grids: list[torch.Tensor], opt: torch.optim.Optimizer, start: float, options: TrainOptions, H: int,
           device):
    """The schedule, step by step, with the gradients cleared and both groups' learning rates set on their
    cosine: (step, share done (by steps, or by seconds with a time limit), whether in the last stage, the
    latents ``grids`` as the step sees them (soft stand-ins for rounding; rounded once and fixed from the
    switch on), the pixel rows (every ``row_stride``-th from a random offset, so that every latent row of level
    ≥ log2(stride) is seen each step; None: all))."""
    base_lrs = [g["lr"] for g in opt.param_groups]
    ys, hard = None, False
    for step in bar:
        frac = step / max(1, options.steps)
        if options.max_seconds:
            frac = max(frac, (time.perf_counter() - start) / options.max_seconds)
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * frac))
        opt.zero_grad(set_to_none=True)
        if frac < options.noise_fraction:
            ys = [_soft(g, frac / options.noise_fraction, options) for g in grids]
        elif not hard:  # the latents no longer change
            ys, hard = [torch.round(g.detach()) for g in grids], True
        rows = None
        if options.row_stride > 1:
            rows = torch.arange(int(torch.randint(options.row_stride, ())), H, options.row_stride, device=device)
        yield step, frac, hard, ys, rows


def _optimizer(fields: list[LatentField], options: TrainOptions) -> torch.optim.Adam:
    return torch.optim.Adam([{"params": [g for f in fields for g in f.grids], "lr": options.lr_latent},
                             {"params": [p for f in fields for p in f.network_parameters()],
                              "lr": options.lr_network}], betas=ADAM_BETAS)


def train(field_: LatentField, target: torch.Tensor, options: TrainOptions) -> TrainReport:
    """Fit ``field_`` to target (H, W, C) float32 in [0, 1] in place, on the device they share."""
    H, W, C = target.shape
    device = target.device
    banded = bands.banded(H, W)  # a large photo: band by band (:mod:`.bands`, the same gradients)
    up = bands.upsampler(field_.shapes, H, W, first=field_.config.first, device=device)
    terms = fused.Terms(options.compile)
    flat_target = target.reshape(H * W, C)
    opt = _optimizer([field_], options)
    pixels = H * W
    control = RateControl(options, pixels, None if options.exact_bits is None else [options.exact_bits])
    lmbda = float(control.lmbda[0])
    fixed = None  # the last stage's context columns of the rounded latents
    start = time.perf_counter()
    history = []
    steps = options.steps
    psnr = bpp = float("nan")
    bar = tqdm(range(steps), desc="fit", disable=not options.progress, leave=False)
    step = 0
    for step, frac, hard, ys, rows in _steps(bar, list(field_.grids), opt, start, options, H, device):
        if hard and fixed is None:  # gather the fixed latents' contexts once
            fixed = ys if banded else pyramid_columns(ys)
        if banded:
            parts = bands.row_bands(rows, H, W, device)
            n = sum(len(part) for part in parts) * W * C
            grads = None if hard else [torch.zeros_like(y) for y in ys]
            def run():
                mse = bands.distortion(field_.synthesis, up, ys, target, parts, 1 / n, grads, terms) / n
                return bands.rate(field_.context, ys, bands.BAND_PIXELS, lmbda / pixels, grads, terms), mse
            bits, mse = terms.step(run, lambda: _reset(opt, grads))
            if grads is not None:
                torch.autograd.backward(ys, grads)
        else:
            def run():
                bits = terms.rate(field_.context, fixed if hard else pyramid_columns(ys))
                if rows is not None:
                    mse = terms.distortion(field_.synthesis, up(ys, rows).reshape(len(rows) * W, -1),
                                           target[rows].reshape(-1, C))
                else:
                    mse = terms.distortion(field_.synthesis, up(ys).reshape(pixels, -1), flat_target)
                (mse + lmbda * bits / pixels).backward()
                return float(bits.detach()), float(mse.detach())
            bits, mse = terms.step(run, lambda: opt.zero_grad(set_to_none=True))
        opt.step()
        bpp = float(control.bpp(np.array([bits]))[0])
        psnr = -10 * math.log10(max(mse, 1e-12))
        if control.due(step):
            calibration = None
            if hard:  # this step's rate is that of the rounded latents
                latent_bits = bits
            else:
                calibrate = control.calibrating(frac)
                with torch.no_grad():
                    rounded_grids = [torch.round(g) for g in field_.grids]
                    if banded:
                        latent_bits = bands.rate(field_.context, rounded_grids, bands.BAND_PIXELS)
                    elif calibrate:  # the calibration's ratio is kept: count exactly
                        latent_bits = float(pyramid_bits(field_.context, rounded_grids))
                    else:  # the phases in turn
                        phase = step // control.every % CONTROL_SAMPLING
                        latent_bits = float(pyramid_bits_sampled(field_.context, rounded_grids, CONTROL_SAMPLING,
                                                                 phase))
                if calibrate:
                    calibration = control.calibrate([g[None] for g in rounded_grids])
            control.update(np.array([latent_bits]), calibration)
            lmbda = float(control.lmbda[0])
        if step % 10 == 0:
            rate_mean = None if control.rate_mean is None else float(control.rate_mean[0])
            history.append((step, time.perf_counter() - start, psnr, bpp, lmbda, rate_mean))
            bar.set_postfix(psnr=f"{psnr:.2f}", bpp=f"{bpp:.3f}")
        if frac >= 1:
            break
    bar.close()
    return TrainReport(step + 1 if steps else 0, time.perf_counter() - start, lmbda, psnr, bpp, history)


class _Stacked:
    """B fields' parameters as batched leaves (B, ...) for training them together: one tensor for the optimiser
    and the products per parameter of a field, not B; :meth:`store` copies them back into the fields. The
    synthesis in container order (w (B, in, out), b (B, out), ...), the context networks in module order."""

    def __init__(self, fields: list[LatentField]):
        self.fields = fields
        self.grids = [torch.stack([f.grids[l].detach() for f in fields]).requires_grad_()
                      for l in range(len(fields[0].grids))]
        self.synthesis = [torch.stack([t.detach() for t in ts]).requires_grad_()
                          for ts in zip(*(f.synthesis.tensors() for f in fields))]
        self.networks = self.synthesis + [torch.stack([p.detach() for p in ps]).requires_grad_()
                                          for ps in zip(*(f.context.parameters() for f in fields))]
        self.context = StackedContext(self.networks[len(self.synthesis):])

    def store(self) -> None:
        with torch.no_grad():
            for b, f in enumerate(self.fields):
                for own, leaf in zip(list(f.grids) + f.synthesis.tensors() + list(f.context.parameters()),
                                     self.grids + self.networks):
                    own.copy_(leaf[b])  # synthesis weights: into the transposed views of their parameters


def train_batch(fields: list[LatentField], targets: torch.Tensor, options: TrainOptions,
                exact_bits: list[Callable] | None = None) -> list[TrainReport]:
    """Fit B fields of one shape to targets (B, H, W, C) float32 in [0, 1] in place, together: each step is one
    pass over all B (their parameters stacked, batched products), each field on its own loss, λ and rate
    target — the gradients of B separate fits, for one pass of a step's fixed cost, which is most of a small
    image's step on a CPU (docs/latent.md). ``exact_bits``: each field's calibration (``options.exact_bits`` of
    one fit). Whole-image steps only (no bands), uncompiled."""
    B, H, W, C = targets.shape
    device = targets.device
    up = bands.upsampler(fields[0].shapes, H, W, first=fields[0].config.first, device=device)
    activation = fields[0].synthesis.activation
    stacked = _Stacked(fields)
    opt = torch.optim.Adam([{"params": stacked.grids, "lr": options.lr_latent},
                            {"params": stacked.networks, "lr": options.lr_network}], betas=ADAM_BETAS)
    pixels = H * W
    control = RateControl(options, pixels, exact_bits, B)
    fixed = None
    start = time.perf_counter()
    histories = [[] for _ in fields]
    steps = options.steps
    psnr = bpp = np.full(B, np.nan)
    bar = tqdm(range(steps), desc="fit", disable=not options.progress, leave=False)
    step = 0
    for step, frac, hard, ys, rows in _steps(bar, stacked.grids, opt, start, options, H, device):
        if hard and fixed is None:
            fixed = pyramid_columns(ys)
        bits = columns_bits(stacked.context, fixed if hard else pyramid_columns(ys))  # (B,)
        x = up(ys, rows)  # (B, rows, W, levels)
        out = run(stacked.synthesis, activation, x.reshape(B, -1, x.shape[-1]))
        want = (targets if rows is None else targets[:, rows]).reshape(B, -1, C)
        mse = ((out - want) ** 2).mean((1, 2))
        lmbda = torch.tensor(control.lmbda, dtype=mse.dtype, device=device)
        (mse + lmbda * bits / pixels).sum().backward()
        opt.step()
        step_bits = bits.detach().double().cpu().numpy()
        bpp = control.bpp(step_bits)
        psnr = -10 * np.log10(np.maximum(mse.detach().double().cpu().numpy(), 1e-12))
        if control.due(step):
            calibration = None
            if hard:
                latent_bits = step_bits
            else:
                calibrate = control.calibrating(frac)
                with torch.no_grad():  # the latents and networks after this step's update
                    rounded = [torch.round(g) for g in stacked.grids]
                    if calibrate:
                        latent_bits = pyramid_bits(stacked.context, rounded)
                    else:
                        phase = step // control.every % CONTROL_SAMPLING
                        latent_bits = pyramid_bits_sampled(stacked.context, rounded, CONTROL_SAMPLING, phase)
                latent_bits = latent_bits.double().cpu().numpy()
                if calibrate:  # measured on the fields
                    stacked.store()
                    calibration = control.calibrate(rounded)
            control.update(latent_bits, calibration)
        if step % 10 == 0:
            seconds = time.perf_counter() - start
            for b, history in enumerate(histories):
                rate_mean = None if control.rate_mean is None else float(control.rate_mean[b])
                history.append((step, seconds, float(psnr[b]), float(bpp[b]), float(control.lmbda[b]), rate_mean))
            bar.set_postfix(psnr=f"{float(np.mean(psnr)):.2f}", bpp=f"{float(np.mean(bpp)):.3f}")
        if frac >= 1:
            break
    bar.close()
    stacked.store()
    seconds = time.perf_counter() - start
    return [TrainReport(step + 1 if steps else 0, seconds, float(control.lmbda[b]), float(psnr[b]), float(bpp[b]),
                        histories[b]) for b in range(B)]


def softround(x: torch.Tensor, t: float) -> torch.Tensor:
    """Agustsson & Theis' soft rounding: round(x) as t → 0, x as t → ∞."""
    return _softround_and_slope(x, t, math.tanh(0.5 / t))[0]


def _soft(g: torch.Tensor, progress: float, options: TrainOptions) -> torch.Tensor:
    """The soft stage's stand-in for rounding, ``progress`` in [0, 1] through that stage."""
    u = torch.rand_like(g)
    if options.quantizer == "noise":
        return g + (u - 0.5)
    t = options.temperature[0] + progress * (options.temperature[1] - options.temperature[0])
    a = options.kumaraswamy[0] + progress * (options.kumaraswamy[1] - options.kumaraswamy[0])
    b = (2 ** a * (a - 1) + 1) / a  # mode at ½
    n = (1 - (1 - u) ** (1 / b)) ** (1 / a) - 0.5
    return _NoisySoftRound.apply(g, n, t)


def _reset(opt: torch.optim.Optimizer, grads: list[torch.Tensor] | None) -> None:
    """A banded step's gradients back to zero: the networks' and the latents' buffers (a step run again)."""
    opt.zero_grad(set_to_none=True)
    for g in grads or ():
        g.zero_()


class _NoisySoftRound(torch.autograd.Function):
    """s_T(s_T(y) + n) with its derivative s_T'(s_T(y) + n) · s_T'(y) written out (autograd's through the
    two tanh chains cost more, on every latent of every soft step)."""

    @staticmethod
    def forward(ctx, y, n, t):
        c = math.tanh(0.5 / t)
        inner, d_inner = _softround_and_slope(y, t, c)
        outer, d_outer = _softround_and_slope(inner + n, t, c)
        ctx.save_for_backward(d_outer.mul_(d_inner))
        return outer

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.saved_tensors[0], None, None


def _softround_and_slope(x: torch.Tensor, t: float, c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """s_T(x) and s_T'(x), c = tanh(1 / (2T))."""
    f = torch.floor(x)
    th = torch.tanh((x - f - 0.5) / t)
    return f + 0.5 * th / c + 0.5, (1 - th * th) / (2 * t * c)
