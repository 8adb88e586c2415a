import math

import numpy as np
import pytest

from snfcodec.eval.metrics import seam_ratio
from snfcodec.eval.seams import paired_seam_ratio, shifted_source

CANVAS, TILE, SHIFT = (128, 128), (64, 64), 32


def picture(y, x):
    """Smooth content with one hard vertical edge that happens to lie on the tile boundary x = 64."""
    return 100 + 40 * np.sin(0.3 * x + 0.2 * y) + 30 * np.cos(0.17 * y - 0.11 * x) + 60 * (x >= 64)


def sampler(offset: int, step: float):
    """Renders picture(· - offset) plus a jump of ``step`` at this encode's own tile boundaries."""

    def sample(crop, size):
        x0, y0, w, h = crop
        xs = x0 + (np.arange(size[0]) + 0.5) * w / size[0]
        ys = y0 + (np.arange(size[1]) + 0.5) * h / size[1]
        y, x = np.meshgrid(ys, xs, indexing="ij")
        blocks = (np.floor(x / TILE[1]) + np.floor(y / TILE[0])) % 2
        return (picture(y - offset, x - offset) + step * blocks)[:, :, None]

    return sample


@pytest.mark.parametrize("scale", [1.0, 2.0, 1.37])
def test_paired_ratio_ignores_content_on_the_boundary(scale):
    # No seam: the raw ratio is fooled by the edge that runs along x = 64, the paired one is not.
    a, b = sampler(0, 0.0), sampler(SHIFT, 0.0)
    assert paired_seam_ratio(a, b, CANVAS, TILE, SHIFT, scale) == pytest.approx(1.0, abs=1e-9)
    n = round(128 * scale)
    assert seam_ratio(a((0, 0, 128, 128), (n, n)), CANVAS, TILE) > 2


@pytest.mark.parametrize("scale", [1.0, 2.0, 1.37])
def test_paired_ratio_sees_a_step_at_the_boundaries(scale):
    ratio = paired_seam_ratio(sampler(0, 20.0), sampler(SHIFT, 20.0), CANVAS, TILE, SHIFT, scale)
    assert ratio > 1.3


def test_paired_ratio_needs_a_boundary():
    a, b = sampler(0, 0.0), sampler(SHIFT, 0.0)
    assert math.isnan(paired_seam_ratio(a, b, (64, 64), (64, 64), SHIFT, 1.0))


def test_shifted_source_moves_content_and_reflects_into_the_gap():
    pixels = np.arange(6 * 5 * 2, dtype=np.uint8).reshape(6, 5, 2)
    moved = shifted_source(pixels, 2)
    assert moved.shape == pixels.shape
    assert np.array_equal(moved[2:, 2:], pixels[:-2, :-2])
    assert np.array_equal(moved[:2, 2:], pixels[1::-1, :-2])
