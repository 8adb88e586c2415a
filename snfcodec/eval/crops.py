"""Labelled side-by-side crops: numbers say which codec wins, pictures say what its errors look like.

A person choosing a codec wants the same region of the same image from each codec at about the same rate,
enlarged without smoothing (nearest neighbour) so that ringing, blocking and blur stay visible, and each panel
labelled with what it is.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..media import on_white, to_pillow

LABEL_SIZE = 13  # font size in pixels
GAP = 4  # white pixels between panels


def detail_region(pixels: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left (y, x) of the ``side``×``side`` window with the most detail (sum of absolute neighbour
    differences), searched on a grid of side/4 steps: where codecs differ most. pixels: (H, W, C) uint8."""
    H, W = pixels.shape[:2]
    side = min(side, H, W)
    gray = pixels.astype(np.float64).mean(axis=2)
    detail = np.zeros((H, W))
    detail[:, 1:] += np.abs(np.diff(gray, axis=1))
    detail[1:, :] += np.abs(np.diff(gray, axis=0))
    integral = np.pad(detail.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, side // 4)
    best, where = -1.0, (0, 0)
    for y in sorted(set(range(0, H - side + 1, step)) | {H - side}):
        for x in sorted(set(range(0, W - side + 1, step)) | {W - side}):
            total = (integral[y + side, x + side] - integral[y, x + side] - integral[y + side, x]
                     + integral[y, x])
            if total > best:
                best, where = total, (y, x)
    return where


def labelled_strip(panels: list[tuple[str, np.ndarray]], zoom: int = 1) -> Image.Image:
    """One row of panels, each (label, (h, w, C) uint8) enlarged ``zoom``× (nearest) under its label.

    Labels may hold several lines ("\\n"); every panel must have the same size.
    """
    font = ImageFont.load_default(size=LABEL_SIZE)
    images = [on_white(to_pillow(p)).convert("RGB").resize((p.shape[1] * zoom, p.shape[0] * zoom), Image.NEAREST)
              for _, p in panels]
    if len({im.size for im in images}) != 1:
        raise ValueError("every panel must have the same size")
    w, h = images[0].size
    lines = max(label.count("\n") + 1 for label, _ in panels)
    label_h = lines * (LABEL_SIZE + 3) + 6
    strip = Image.new("RGB", (len(images) * w + (len(images) - 1) * GAP, label_h + h), "white")
    draw = ImageDraw.Draw(strip)
    for i, ((label, _), im) in enumerate(zip(panels, images)):
        x = i * (w + GAP)
        draw.multiline_text((x + 3, 3), label, fill="black", font=font, spacing=3)
        strip.paste(im, (x, label_h))
    return strip
