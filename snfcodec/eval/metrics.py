"""Quality and rate metrics shared by the evaluation scripts."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..codec import psnr_float, psnr_uint8

__all__ = ["psnr_uint8", "psnr_float", "ms_ssim", "bd_rate"]

# pytorch-msssim's MS-SSIM (5 scales, 11-pixel window) needs both sides larger than (11 - 1) · 2^4 = 160.
MS_SSIM_MIN_SIDE = 161


def ms_ssim(a: np.ndarray, b: np.ndarray) -> tuple[float, str]:
    """MS-SSIM of two (H, W, C) uint8 images, or SSIM where the image is too small for five scales.

    Returns (value, "ms_ssim" | "ssim") so that reports can say which one they hold.
    """
    from pytorch_msssim import ms_ssim as _ms_ssim, ssim as _ssim

    x = torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None]
    y = torch.from_numpy(b.astype(np.float32)).permute(2, 0, 1)[None]
    if min(a.shape[:2]) >= MS_SSIM_MIN_SIDE:
        return float(_ms_ssim(x, y, data_range=255.0)), "ms_ssim"
    side = min(a.shape[:2])
    if side < 3:
        return math.nan, "ssim"
    win = min(11, side if side % 2 else side - 1)  # the Gaussian window must be odd and fit the image
    return float(_ssim(x, y, data_range=255.0, win_size=win)), "ssim"


def bd_rate(rate_a, quality_a, rate_b, quality_b) -> float:
    """Bjøntegaard delta rate of B against A in percent (negative: B needs fewer bits for the same quality).

    Cubic fit of log(rate) over quality for each curve, integrated over the overlapping quality range
    (Bjøntegaard, VCEG-M33); a curve of fewer than 4 points gets the highest degree its points determine.
    Returns NaN when the curves do not overlap or a curve has fewer than 2 points.
    """
    ra, qa, rb, qb = (np.asarray(v, dtype=np.float64) for v in (rate_a, quality_a, rate_b, quality_b))
    if min(len(qa), len(qb)) < 2 or np.any(ra <= 0) or np.any(rb <= 0):
        return math.nan
    lo, hi = max(qa.min(), qb.min()), min(qa.max(), qb.max())
    if not hi > lo:
        return math.nan
    pa = np.polyint(np.polyfit(qa, np.log(ra), min(3, len(qa) - 1)))
    pb = np.polyint(np.polyfit(qb, np.log(rb), min(3, len(qb) - 1)))
    mean_diff = ((np.polyval(pb, hi) - np.polyval(pb, lo)) - (np.polyval(pa, hi) - np.polyval(pa, lo))) / (hi - lo)
    return float((math.exp(mean_diff) - 1.0) * 100.0)


def seam_ratio(decoded: np.ndarray, canvas: tuple[int, int], tile: tuple[int, int]) -> float:
    """How visible tile boundaries are in a whole-canvas decode of any size.

    decoded: (H', W', C) samples of the canvas ``canvas`` = (H, W) tiled by ``tile``. Returns the mean absolute
    difference between neighbouring output pixels whose centres straddle a tile boundary, divided by the mean
    difference between all other neighbours (both axes). 1.0: the boundaries look like any other place; NaN:
    the canvas has a single tile.
    """
    across, elsewhere = [], []
    values = decoded.astype(np.float64)
    for axis, (extent, size) in enumerate(zip(canvas, tile)):
        n = decoded.shape[axis]
        centres = (np.arange(n) + 0.5) * extent / n
        straddle = np.floor(centres[:-1] / size) != np.floor(centres[1:] / size)
        jumps = np.moveaxis(np.abs(np.diff(values, axis=axis)), axis, 0)
        across.append(jumps[straddle].ravel())
        elsewhere.append(jumps[~straddle].ravel())
    a, e = np.concatenate(across), np.concatenate(elsewhere)
    if a.size == 0 or e.size == 0 or e.mean() == 0:
        return math.nan
    return float(a.mean() / e.mean())
