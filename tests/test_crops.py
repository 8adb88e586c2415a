import numpy as np
import pytest

from snfcodec.eval.crops import GAP, detail_region, labelled_strip


def test_detail_region_finds_the_textured_patch():
    pixels = np.full((100, 140, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    pixels[60:92, 96:128] = rng.integers(0, 256, (32, 32, 3))
    y, x = detail_region(pixels, 32)
    assert (y, x) == (60, 96) or (abs(y - 60) <= 8 and abs(x - 96) <= 8)
    # The window always lies inside the image, even when the side does not divide it.
    y, x = detail_region(pixels, 37)
    assert 0 <= y <= 100 - 37 and 0 <= x <= 140 - 37


def test_labelled_strip_places_enlarged_panels_under_their_labels():
    a = np.zeros((4, 5, 3), np.uint8)
    b = np.full((4, 5, 3), 200, np.uint8)
    b[0, 0] = (255, 0, 0)
    strip = np.asarray(labelled_strip([("black", a), ("grey\nsecond line", b)], zoom=3))
    label_h = strip.shape[0] - 12
    assert strip.shape[1] == 2 * 15 + GAP
    assert (strip[label_h:, :15] == 0).all()
    right = strip[label_h:, 15 + GAP:]
    assert (right[:3, :3] == (255, 0, 0)).all() and (right[3:, 3:] == 200).all()  # nearest, not smoothed
    assert (strip[:label_h] < 128).any()


def test_labelled_strip_composites_alpha_on_white_and_checks_sizes():
    clear = np.zeros((2, 2, 2), np.uint8)  # LA, fully transparent black
    strip = np.asarray(labelled_strip([("clear", clear)]))
    assert (strip[-2:, :2] == 255).all()
    with pytest.raises(ValueError, match="same size"):
        labelled_strip([("a", clear), ("b", np.zeros((3, 2, 2), np.uint8))])
