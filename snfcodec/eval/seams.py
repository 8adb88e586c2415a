"""Tile seams measured against the same picture content away from any boundary.

A photo differs a lot from line to line, so the jump across one tile boundary says little by itself: the raw
ratio (``metrics.seam_ratio``) moves with whatever the boundary happens to run through. The paired measure
encodes the source twice, as it is (a) and shifted down and right by half a tile (b, reflected into the top
and left, cut back to the same size), so that every boundary of one encode runs through the middle of a tile
of the other. Each boundary's jump is compared with the jump across the *same content line* in the other
encode, both sampled at the same density and phase, along the content the two encodes share. Same picture,
same rate, same networks: only where the line sits in the tiling differs.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

# sample(crop=(x, y, w, h) in canvas pixels, size=(width, height)) → (height, width, C) pixels
Sampler = Callable[[tuple[float, float, float, float], tuple[int, int]], np.ndarray]


def shifted_source(pixels: np.ndarray, shift: int) -> np.ndarray:
    """(H, W, C) → (H, W, C): content moved ``shift`` pixels down and right, the gap filled by reflection."""
    H, W = pixels.shape[:2]
    return np.pad(pixels, ((shift, 0), (shift, 0), (0, 0)), mode="symmetric")[:H, :W]


def _line_jump(sample: Sampler, axis: int, position: float, start: float, length: float, scale: float) -> float:
    """Mean |difference| of the two samples at ``position`` ± 0.5/scale along ``axis`` (0: rows, 1: columns),
    over ``length`` canvas pixels of the other axis from ``start``, sampled at ``scale`` samples per pixel."""
    n = max(1, round(length * scale))
    step = 1.0 / scale
    if axis == 1:
        pixels = sample((position - step, start, 2 * step, length), (2, n))
    else:
        pixels = sample((start, position - step, length, 2 * step), (n, 2))
    return float(np.abs(np.diff(pixels.astype(np.float64), axis=axis)).mean())


def paired_seam_ratio(sample_a: Sampler, sample_b: Sampler, canvas: tuple[int, int], tile: tuple[int, int],
                      shift: int, scale: float) -> float:
    """Σ jumps across the tile boundaries of either encode ÷ Σ jumps across the same content in the other.

    sample_a renders the encode of the source, sample_b that of ``shifted_source(source, shift)``; both have
    the canvas (H, W) and square-grid tiles ``tile`` = (th, tw) starting at 0. 1.0: a line jumps as much on a
    boundary as in the middle of a tile. NaN: no boundary has its content inside the other encode.
    """
    on = off = 0.0
    inset = 1.0 / scale  # both samples of a pair must lie on real (not reflected) content, inside the canvas
    for axis in (0, 1):
        extent, size, length = canvas[axis], tile[axis], canvas[1 - axis] - shift
        if length <= 0:
            continue
        for p in range(size, extent, size):
            q = p + shift  # a's boundary p holds the content of b's line q
            if q <= extent - inset and q % size:
                on += _line_jump(sample_a, axis, p, 0, length, scale)
                off += _line_jump(sample_b, axis, q, shift, length, scale)
            q = p - shift  # b's boundary p holds the content of a's line q
            if q >= inset and q % size:
                on += _line_jump(sample_b, axis, p, shift, length, scale)
                off += _line_jump(sample_a, axis, q, 0, length, scale)
    return on / off if off > 0 else math.nan
