"""A training step of a large photo band by band: the same loss and gradients as the whole-image step, in
memory bounded by the band, not by the photo.

Each band reads windows of the latents (the rows its pixels' taps reach, or, for the rate, a band of one level's
rows with a row of halo and its parents' rows) cut off as leaves of their own; its loss is back-propagated at
once, which frees its graph, and the windows' gradients are added into full-size buffers (overlapping windows add
up, as the whole-image gradient does). The caller then back-propagates those buffers through whatever made the
latents (the soft rounding). Measured (docs/latent.md, "Large photos"): a 3.1 MP step held 2.44 GB whole and
0.86 GB in bands, and took 1.32 s against 0.68 s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..grid import pixel_centres
from .context import ContextModel, band_columns
from .fused import Terms
from .grids import Upsampler
from .synthesis import Synthesis

# Photos of more than WHOLE_PIXELS go band by band, BAND_PIXELS pixels (or latents of one level) at a time, and
# read their levels by convolution and gathers rather than by matrices; smaller ones in one piece, as before
# (a 768×512 step: 101 ms whole, 127 ms in bands; 1024×768: 184 / 191 ms; 1536×1024: 665 / 411 ms).
WHOLE_PIXELS = 1 << 20
BAND_PIXELS = 1 << 18
EAGER = Terms(False)


def banded(H: int, W: int) -> bool:
    return H * W > WHOLE_PIXELS


def upsampler(shapes: list[tuple[int, int]], H: int, W: int, dtype: torch.dtype = torch.float32,
              first: int = 0, device="cpu") -> Upsampler:
    """The levels (of :func:`.grids.level_shapes` from ``first``) read at an H×W image's pixel centres, as its
    bands read them."""
    return Upsampler(shapes, pixel_centres(H), pixel_centres(W), dtype, device,
                     dense_limit=0 if banded(H, W) else None, first=first)


def row_bands(rows: torch.Tensor | None, H: int, W: int, device="cpu") -> list[torch.Tensor | None]:
    """The image rows ``rows`` (None: all, on ``device``) in bands of at most BAND_PIXELS pixels (one, unsplit,
    for a small photo)."""
    if not banded(H, W):
        return [rows]
    return list(torch.split(torch.arange(H, device=device) if rows is None else rows, max(1, BAND_PIXELS // W)))


def windows_of(ys: list[torch.Tensor], spans: list[tuple[int, int]], grad: bool) -> list[torch.Tensor]:
    """Rows [lo, hi) of each level as new leaves (requiring a gradient if ``grad``)."""
    return [y[lo:hi].detach().requires_grad_(grad) for y, (lo, hi) in zip(ys, spans)]


def read(up: Upsampler, ys: list[torch.Tensor], part: torch.Tensor | None,
         grad: bool) -> tuple[torch.Tensor, list[torch.Tensor], list[tuple[int, int]]]:
    """The levels read at the image rows ``part`` (None: all) from windows of ``ys`` cut off as leaves:
    (x (rows · W, levels), the leaves, their spans of rows)."""
    spans = [(0, y.shape[0]) for y in ys] if part is None else up.windows(part)
    leaves = windows_of(ys, spans, grad)
    return up(leaves, part, [lo for lo, _ in spans]).reshape(-1, len(ys)), leaves, spans


def add_grads(grads: list[torch.Tensor] | None, leaves: list[torch.Tensor], spans: list[tuple[int, int]]) -> None:
    if grads is not None:
        for g, leaf, (lo, hi) in zip(grads, leaves, spans):
            if leaf.grad is not None:
                g[lo:hi] += leaf.grad


def distortion(synthesis: Synthesis, up: Upsampler, ys: list[torch.Tensor], target: torch.Tensor,
               parts: list[torch.Tensor], weight: float, grads: list[torch.Tensor] | None,
               terms: Terms = EAGER) -> float:
    """Sum of squared errors on the bands of image rows ``parts`` ((m,) int64 each, :func:`row_bands`) of target
    (H, W, C); back-propagates weight × it into the synthesis network and into ``grads`` (full-size, one a level;
    None: the latents are fixed)."""
    C = target.shape[2]
    total = 0.0
    for part in parts:
        x, leaves, spans = read(up, ys, part, grads is not None)
        want = target[part].reshape(-1, C)
        sse = terms.distortion(synthesis, x, want) * want.numel()
        (weight * sse).backward()
        total += float(sse.detach())
        add_grads(grads, leaves, spans)
    return total


def rate(model: ContextModel, ys: list[torch.Tensor], band_latents: int, weight: float | None = None,
         grads: list[torch.Tensor] | None = None, terms: Terms = EAGER) -> float:
    """Bits of the latents ``ys`` (finest first) under the float context model, level by level in bands of
    about ``band_latents``; back-propagates weight × them into the model and into ``grads`` (no weight: only
    counts them)."""
    if weight is None:
        with torch.no_grad():
            return rate(model, [y.detach() for y in ys], band_latents, 0.0)
    total = 0.0
    for l, y in enumerate(ys):
        h, w = y.shape
        parent = ys[l + 1] if l + 1 < len(ys) else None
        step = max(2, band_latents // w // 2 * 2)  # even: a band's checkerboard is its level's
        for a in range(0, h, step):
            b = min(h, a + step)
            spans = [(max(0, a - 1), min(h, b + 1))]
            if parent is not None:
                lo = a // 2 - 1
                hi = lo + (b - a + 1) // 2 + 2
                spans.append((max(0, lo), min(parent.shape[0], hi)))
            leaves = windows_of([y] if parent is None else [y, parent], spans, grads is not None)
            own = F.pad(leaves[0], (1, 1, int(a == 0), int(b == h)))
            above = None
            if parent is not None:
                plo, phi = spans[1]
                above = F.pad(leaves[1], (1, 1, plo - lo, hi - phi))
            bits = terms.rate(model, band_columns(own, above))
            if bits.requires_grad:
                (weight * bits).backward()
            total += float(bits.detach())
            add_grads(None if grads is None else grads[l:l + 2], leaves, spans)
    return total
