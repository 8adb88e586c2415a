"""Measured rules: which network, tiling, α and learning rate to use for a given signal and bit budget.

Everything here is a choice backed by a measurement (see ``docs/design.md``); the codec core only asks these
functions, so changing a rule never touches the pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .field import FieldConfig
from .grid import TileLayout
from .latent import bands
from .latent.field import LatentConfig
from .latent.train import SHORT_RUN_STEPS

# Expected cost of one parameter after quantization-aware fine-tuning and entropy coding: the network is sized
# with it, and the rate search then lands the file exactly, so it trades width against quantization noise.
# Audio, and images at 2 bpp and above, use 6.5. Images below 2 bpp are sized for fewer bits (a wider field,
# quantized more coarsely): 5.5 at 1 bpp and below, log-rate interpolation between. Measured on five 768×512
# photos (docs/design.md): +0.08 to +0.43 dB at 0.25-1 bpp; at 2 bpp 5.5 lost 0.17 dB.
BITS_PER_PARAM = 6.5
IMAGE_BITS_PER_PARAM = ((1.0, 5.5), (2.0, 6.5))  # (bpp, bits per parameter) anchors; constant outside them
# Step budgets by input dimension (1: audio, 2: images). Audio fits stall early (300 → 1000 steps gained
# 0.1 dB on speech at 32 kb/s) and cost per step grows with the duration, so its budgets are lower.
# "placebo" is for users who will wait: no measured curve had flattened at "slow", and placebo is not measured.
EFFORTS = ("fast", "default", "slow", "placebo")
EFFORT_STEPS = {
    1: {"fast": 100, "default": 300, "slow": 1000, "placebo": 3000},
    2: {"fast": 300, "default": 1000, "slow": 3000, "placebo": 10000},
}
DEFAULT_LR = 3e-3
# Narrow image fields (up to 2 bpp with 64×64 tiles: width 23) are fitted at lr 5e-3 with sub-grid steps
# (fit.FitOptions.stride 2: 90 % of the steps see every second row and column at a random phase, a quarter of
# the samples). Measured on 768×512 photos (docs/scale.md): 1400 such steps against the former 1000 full steps
# at 3e-3 gained 0.10-0.44 dB at 0.5, 1 and 2 bpp in about half the time; 600 against 300 full steps (fast)
# gained 0.49 dB in 0.66× the time. Wider fields (4 bpp: width 33) keep 1000 full steps at 3e-3: a higher rate
# lost 0.20 dB there, and sub-grids are not measured on them. The slow effort is not re-measured.
NARROW_IMAGE_WIDTH = 24
NARROW_IMAGE_STEPS = {"fast": 600, "default": 1400, "slow": 3000, "placebo": 10000}
NARROW_IMAGE_LR = 5e-3
NARROW_IMAGE_STRIDE = 2
SINE_LAYERS = 3
# Tile sides the image presets choose from, smallest first: the first whose field is at least MIN_IMAGE_WIDTH wide
# (768×512 at 0.25 bpp: 64 → width 7, 128 → width 17; at 0.5 bpp 64 → width 11). Measured on five 768×512 photos
# (docs/design.md): at 0.25 bpp 128-pixel tiles gained 0.49 dB on average (+0.67 to +0.89 on four, −0.62 on one);
# at 0.5 bpp they were even (−0.07 dB mean, −1.14 to +0.37), so 64 stays from width 10 up (measured with
# 6.5 bits per parameter, widths 6 / 15 / 10 then).
IMAGE_TILES = (64, 128)
MIN_IMAGE_WIDTH = 10
IMAGE_MARGIN = 4
IMAGE_OMEGA0 = 30.0
MIN_WIDTH = 4
# Weight of the gradient term in the fitting loss (fit.Problem), by input dimension.
GRADIENT_WEIGHT = {1: 16.0, 2: 1.0}


@dataclass(frozen=True)
class Architecture:
    field: FieldConfig
    tiling: TileLayout

    @property
    def params(self) -> int:
        return self.field.params_per_field() * self.tiling.num_tiles


def _widest(tiling: TileLayout, in_dim: int, out_dim: int, budget_params: int, sine_layers: int) -> int:
    """Largest width whose network, over all tiles, stays within the parameter budget (0 if none does)."""
    width = 0
    while FieldConfig(in_dim, out_dim, width + 1, sine_layers).params_per_field() * tiling.num_tiles \
            <= budget_params:
        width += 1
        if width >= 1024:
            break
    return width


def image_architecture(height: int, width: int, channels: int, budget_params: int,
                       tiles: tuple[int, ...] = IMAGE_TILES) -> Architecture | None:
    """Square tiles, widest net within the budget: the first of ``tiles`` (sides in pixels, capped at the
    image's long side) whose field is at least MIN_IMAGE_WIDTH wide, else the last one that fits at all.

    Returns None when not even the narrowest network fits the budget with any of them.
    """
    chosen = None
    for tile in tiles:
        arch = _tiled_image(height, width, channels, budget_params, tile)
        if arch is not None:
            chosen = arch
            if arch.field.width >= MIN_IMAGE_WIDTH:
                break
    return chosen


def _tiled_image(height: int, width: int, channels: int, budget_params: int, tile: int) -> Architecture | None:
    tile = min(tile, max(height, width))
    tiling = TileLayout((height, width), (tile, tile), (min(IMAGE_MARGIN, tile // 2),) * 2)
    n = _widest(tiling, 2, channels, budget_params, SINE_LAYERS)
    if n < MIN_WIDTH:
        return None
    return Architecture(FieldConfig(2, channels, n, SINE_LAYERS, IMAGE_OMEGA0), tiling)


AUDIO_WIDTH = 16  # segment length is chosen so that each segment's field has about this width
AUDIO_MARGIN = 32  # cross-fade half-width between segments, in samples
AUDIO_OMEGA0 = 30.0
MIN_SEGMENT = 64


def audio_architecture(samples: int, channels: int, budget_params: int) -> Architecture | None:
    """Segments sized so that each field is about AUDIO_WIDTH wide at this budget; widest net that fits."""
    per_sample = budget_params / samples
    if per_sample <= 0:
        return None
    target = FieldConfig(1, channels, AUDIO_WIDTH, SINE_LAYERS).params_per_field()
    segment = int(min(samples, max(MIN_SEGMENT, round(target / per_sample))))
    tiling = TileLayout((samples,), (segment,), (min(AUDIO_MARGIN, segment // 2),))
    n = _widest(tiling, 1, channels, budget_params, SINE_LAYERS)
    if n < MIN_WIDTH:
        return None
    return Architecture(FieldConfig(1, channels, n, SINE_LAYERS, AUDIO_OMEGA0), tiling)


def image_bits_per_param(bpp: float) -> float:
    """Expected bits per parameter of an image field at ``bpp`` (see IMAGE_BITS_PER_PARAM)."""
    (r0, b0), (r1, b1) = IMAGE_BITS_PER_PARAM
    t = min(1.0, max(0.0, math.log(bpp / r0) / math.log(r1 / r0))) if bpp > 0 else 0.0
    return b0 + t * (b1 - b0)


def min_field_params(in_dim: int, out_dim: int) -> int:
    """Parameters of the narrowest field the presets use."""
    return FieldConfig(in_dim, out_dim, MIN_WIDTH, SINE_LAYERS).params_per_field()


def min_field_bytes(in_dim: int, out_dim: int, bits_per_param: float) -> int:
    """Expected size of the narrowest field the presets use (for error messages)."""
    return math.ceil(min_field_params(in_dim, out_dim) * bits_per_param / 8)


# First-layer weight scaling, measured per medium (docs/speed.md, docs/design.md). Audio segments hold many
# periods of speech per field: widening the first layer's frequency range pays (+3 dB at 32 kb/s). Narrow image
# fields want it *narrower*: 0.5 gave +0.24 dB at 2 bpp (width 22; six 128x128 photos, 3 seeds), +1.2 dB at
# 1 bpp, +2.2 dB at 0.5 bpp and a field that interpolates better, but -0.9 dB at 4 bpp (width 33), where 0.75
# and 1 tie. Between the two measured widths the factor is interpolated.
AUDIO_ALPHA_FIRST = 4.0
IMAGE_ALPHA_FIRST = ((22, 0.5), (33, 1.0))  # (width, α_first) anchors; constant outside them


def auto_alpha(config: FieldConfig) -> tuple[float, float]:
    """(α_first, α_hidden) for ``alpha="auto"``."""
    if config.in_dim == 1:
        return AUDIO_ALPHA_FIRST, 1.0
    (w0, a0), (w1, a1) = IMAGE_ALPHA_FIRST
    t = min(1.0, max(0.0, (config.width - w0) / (w1 - w0)))
    return a0 + t * (a1 - a0), 1.0


def _narrow_image(config: FieldConfig) -> bool:
    return config.in_dim == 2 and config.width <= NARROW_IMAGE_WIDTH


def effort_steps(config: FieldConfig) -> dict[str, int]:
    """Step budget of each effort for fields of this shape."""
    return dict(NARROW_IMAGE_STEPS if _narrow_image(config) else EFFORT_STEPS[config.in_dim])


def fit_stride(config: FieldConfig) -> int:
    """Sub-grid stride of the fitting steps (fit.FitOptions.stride)."""
    return NARROW_IMAGE_STRIDE if _narrow_image(config) else 1


def auto_lr(config: FieldConfig, alpha: tuple[float, float]) -> float:
    return NARROW_IMAGE_LR if _narrow_image(config) else DEFAULT_LR


# ---- the latent field (version 3, snfcodec.latent) ---------------------------------------------------------
# Chosen on training-side 768×512 photos (docs/latent.md); Kodak was not used.
# The default effort took 800 steps once the step was compiled (latent.fused): in the seconds 600 eager steps took,
# +0.13 to +0.28 dB at 0.25-1 bpp on three photos (docs/latent.md, "Compiled steps").
LATENT_STEPS = {"fast": 300, "default": 800, "slow": 2000, "placebo": 10000}  # placebo: the published GPU budgets
# Distortion on every second pixel row a step, at a random offset (train.TrainOptions.row_stride). Measured on two
# 768×512 photos at 0.5 bpp (docs/latent.md): 600 steps in 0.64-0.70× the time for −0.07 / +0.02 dB; at equal
# time (900 such steps) +0.14 / +0.15 dB. Every fourth row lost 0.58 dB on one photo and saved little more time.
LATENT_ROW_STRIDE = 2
LATENT_LR = 0.1  # Adam learning rate of the latents
# ... and of runs of at most LATENT_SHORT_STEPS steps (the fast effort's): a short schedule moves the latents
# less, so it starts them faster. Measured at 300 steps on three 768×512 photos (docs/latent.md): 0.15 against 0.1
# gained +0.04 to +0.38 dB at 0.5 bpp and +0.40 to +0.80 at 1 bpp; at 600 steps it was mixed (−0.12 to +0.16 dB).
LATENT_SHORT_LR = 0.15
# Above LATENT_LR_BPP the latents' learning rate grows in proportion to the rate, up to LATENT_LR_MAX: latents that
# carry more bits sit further from zero, and Adam moves each by about its learning rate a step. Measured on three
# training-side 768×512 photos (002 / 004 / 009, docs/latent.md, "The latents' learning rate and the rate"),
# default effort, 0.1 → 0.2 at 1 bpp +0.76 / +0.31 / +0.11 dB, 0.1 → 0.4 at 2 bpp +1.82 / +0.96 / +1.06; fast
# effort, 0.15 → 0.3 at 1 bpp +0.49 / +0.13 / −0.01, 0.15 → 0.6 at 2 bpp +1.17 / +1.13 / +0.65; at 0.5 bpp 0.15
# against 0.1 was mixed (+0.10 / +0.08 / −0.10), so the rule starts there. At 4 bpp ("Rates above 1 bpp and small
# images", ninth session): default effort 0.4 → 0.8 +0.56 / +1.36 dB (768×512, 004 / 009) and +0.98 / +0.75 /
# +0.61 (256×256: the astronaut, 004, 009); fast effort on the 256×256 ones 0.6 / 0.8 / 1.2: 34.52 / 34.82 / 33.91,
# 35.47 / 35.57 / 35.11, 38.09 / 38.05 / 37.51 dB — the rate is capped at 0.8 for every effort.
LATENT_LR_BPP = 0.5
LATENT_LR_MAX = 0.8
LATENT_SHORT_STEPS = SHORT_RUN_STEPS  # one definition of a short run: the trainer's (its first λ, latent.train)
LATENT_LR_NETWORK = 0.02  # and of the synthesis and context networks
# Fits of at least this many pixel-steps compile their step (snfcodec.latent.fused): 768×512 at the fast effort's
# 300 steps and up. The compilation takes ≈ 15 s the first time on a machine and ≈ 2 s a process after.
LATENT_COMPILE_WORK = 1e8
LATENT_ALPHA = (1.0, 1.0)  # weight scaling of the sine synthesis
# The soft stage's stand-in for rounding: C3's soft rounding around Kumaraswamy noise (train.TrainOptions), at a
# fixed temperature 0.3. Measured on six 768×512 photos at 0.5 bpp (docs/latent.md): uniform noise left two of
# them far off (one trimmed to 19.5 dB from a 31.9 dB fit, one 0.7 dB below soft rounding) and wider synthesis
# networks collapsed; soft rounding did neither, and moved the other four by −0.03 to +0.17 dB.
LATENT_QUANTIZER = "softround"
LATENT_TEMPERATURE = (0.3, 0.3)
# "auto" gives an image the latent field where it measured better than the tiled one on training-side photos
# (docs/latent.md, "auto" and "Rates above 1 bpp and small images"): at 0.25–1 bpp, fast and default effort, it was
# ahead in 20 of 24 photo-rate cells at 768×512, and on 256×256 crops at 0.5 bpp; since the latents' learning rate
# follows the rate, at 2 bpp on 256×256 (+1.6 to +3.5 dB, four photos) and 128×128 (+1.3 to +2.2, four) and at
# 4 bpp on 256×256 (+1.8 to +4.2 dB), 128×128 (+3.2 to +3.5) and 768×512 (+3.4 / +3.3). Above 4 bpp its 800
# steps spend at most ≈ 5 bpp (λ at its floor) and the tiled field wins: at 6 bpp on one of two 256×256 images, at
# 8 bpp on both (by 1.3 / 4.3 dB).
LATENT_AUTO_BPP = 4.0  # highest rate (bpp) at which "auto" picks it
# Its networks and header (≈ 10 kbit) must be at most this share of the file: measured ahead at 31 % (256×256 at
# 0.5 bpp); a 128×128 image at 1 bpp would spend 61 % there, and the encoder refuses more than 83 %.
LATENT_MAX_FIXED_SHARE = 1 / 3
# Photos over 1 MP train band by band (latent.bands: 2.3 GB peak at 12 MP with 8 steps); at 2800×1867 and
# 0.5 bpp, default effort, it measured 31.64 dB in 659 s against the tiled field's 30.72 dB in 275 s
# (docs/latent.md, "Large photos"). Larger than this keeps the tiled field (measured to 48 MP in 5 GB).
LATENT_MAX_PIXELS = 1 << 24
# At rates up to this the finest level is 1:2 (no latent a pixel). At 0.25 bpp on nine training-side 768×512 photos
# (docs/latent.md, "The finest level at low rates"): fast +0.24 dB on average (8 of 9 up, 009 −0.14), default
# +0.14 (6 of 9 up, 009 −0.32), each in about half the fitting time; at 0.375 bpp +0.64 / +0.34 / −0.58 dB and at
# 0.5 bpp +0.38 / −0.08 / −1.24 (fast, three photos); at 1 bpp the coarser field cannot spend the rate.
LATENT_HALF_SCALE_BPP = 0.3
# ... in runs of at most this many steps: at the slow effort's 2,000 (0.25 bpp) two photos gained +0.21 / +0.14 dB
# but 009 ended 27 % under its target (the rounded rate fell 0.273 → 0.173 bpp within 100 steps of the switch, as the
# context model relearned the fixed latents after λ had risen 6× against an overestimate; docs/latent.md).
LATENT_HALF_SCALE_STEPS = 800
# Longer runs, up to the slow effort's, start at 1:2 at rates up to LATENT_HALF_SCALE_LONG_BPP: at 0.125 bpp and
# 2,000 steps six training-side photos gained +0.17 dB on average (5 of 6 up, 009 −0.01, which lands at its rate
# there), each in 0.41–0.67 of the fitting time (docs/latent.md, "The slow effort from 1:2 at 0.125 bpp");
# placebo's 10,000 steps are not measured.
LATENT_HALF_SCALE_LONG_BPP = 0.15
LATENT_HALF_SCALE_LONG_STEPS = 2000


# encode_many trains latent images of one size and rate together (latent.train.train_batch) where one alone would
# not be compiled (LATENT_COMPILE_WORK) nor trained in bands: there a step's fixed cost (≈ 1,200 small copies
# building the context columns, the optimiser's, ...) is most of it. Groups of at most LATENT_GROUP_PIXELS pixels.
LATENT_GROUP_PIXELS = 1 << 19


def latent_batchable(H: int, W: int, steps: int, compiled: bool) -> bool:
    """Whether an H×W latent image fitted in ``steps`` can be trained in a group with others of its size:
    ``compiled`` (whether its one-file fit would be: :func:`.latent.fused.requested`) is not, and its work is under
    LATENT_COMPILE_WORK, the sizes where grouping was measured to pay (also where no compiler is found)."""
    return (not compiled and H * W * steps < LATENT_COMPILE_WORK and not bands.banded(H, W)
            and 2 * H * W <= LATENT_GROUP_PIXELS)


def latent_lr(steps: int, bpp: float | None = None) -> float:
    """The latents' learning rate for a run of ``steps`` at ``bpp`` (None: a λ given directly)."""
    base = LATENT_SHORT_LR if steps <= LATENT_SHORT_STEPS else LATENT_LR
    return min(LATENT_LR_MAX, base * max(1.0, (bpp or 0.0) / LATENT_LR_BPP))


def latent_config(H: int, W: int, bpp: float | None = None, steps: int = LATENT_STEPS["default"]):
    """The latent field's shape for an H×W image at ``bpp`` (None: a λ given directly) fitted in ``steps``: levels
    down to a coarsest grid of about 8 latents a side, from 1:2 at rates up to LATENT_HALF_SCALE_BPP in runs of up
    to LATENT_HALF_SCALE_STEPS and up to LATENT_HALF_SCALE_LONG_BPP in runs of up to LATENT_HALF_SCALE_LONG_STEPS,
    else from 1:1."""
    levels = max(1, min(7, int(math.log2(max(1, min(H, W) // 4))) + 1))
    half = bpp is not None and (bpp <= LATENT_HALF_SCALE_BPP and steps <= LATENT_HALF_SCALE_STEPS
                                or bpp <= LATENT_HALF_SCALE_LONG_BPP and steps <= LATENT_HALF_SCALE_LONG_STEPS)
    first = 1 if half and levels > 1 else 0
    return LatentConfig(levels=levels - first, first=first)


def image_field(bpp: float, pixels: int, fixed_bits: float) -> str:
    """"latent" where the latent field measured better than the tiled one (at every effort), else "tiles".
    ``fixed_bits``: what a latent file of this image spends outside its latents."""
    latent = (0 < bpp <= LATENT_AUTO_BPP and pixels <= LATENT_MAX_PIXELS
              and fixed_bits <= LATENT_MAX_FIXED_SHARE * bpp * pixels)
    return "latent" if latent else "tiles"


# ---- the spectral audio field (version 3, snfcodec.spectral) ---------------------------------------------
# Chosen on public, non-reserved recordings (docs/audio.md).
SPECTRAL_FRAME_SECONDS = 0.02  # frame hop ≈ 20 ms, rounded to a power of two of samples (16 kHz: 256,
# 44.1 and 48 kHz: 1024)
SPECTRAL_STEPS = {"fast": (60, 40), "default": (150, 100), "slow": (400, 300), "placebo": (1000, 800)}  # context training steps
SPECTRAL_DEADZONE = 0.1  # rounding towards zero, in steps (measured: docs/audio.md)
SPECTRAL_CONTEXT_WIDTH = 12
SPECTRAL_WINDOW = 1024  # frames a window: ≈ 16 s at 16 kHz, 21–24 s at 44.1 and 48 kHz
# "auto" gives a sound the spectral field when its fixed cost (header and context weights, ≈ 620 bytes) is at
# most this share of the file; shorter or leaner files keep the tiled field, which has no such floor.
SPECTRAL_MAX_FIXED_SHARE = 0.25


def spectral_frame(sample_rate: int) -> int:
    """Frame hop N (samples, a power of two within the format's 16 … 8192) for a sample rate."""
    return 1 << int(min(13, max(4, round(math.log2(max(1.0, SPECTRAL_FRAME_SECONDS * sample_rate))))))
