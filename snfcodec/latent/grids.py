"""The latent pyramid and its continuous upsampling.

Level ``l`` of an H×W image is a grid of ceil(H / 2^l) × ceil(W / 2^l) latents (one channel); its sample ``k``
along an axis sits at canvas position (k + 0.5) · 2^l, on the same canvas as the pixels (pixel ``i`` at
``i + 0.5``, :mod:`snfcodec.grid`). Every level is read at any canvas position by separable cubic
convolution (Keys' kernel, a = −0.75, which passes through the samples), so the field is defined at every
coordinate: the original grid, 2×, a crop, a thumbnail are all the same function sampled elsewhere. At the
original pixel centres level 0 reads back exactly its own samples. A field's levels are l = first … first + L − 1:
at low rates it starts at 1:2 (``LatentConfig.first``), where a level at the pixels' own resolution costs more
than it gives.

Each axis of a level is read by four taps per position: as one matrix product where the (outputs × samples)
matrix is small; at the pixel centres of a large image, as one convolution with 2^l phases of five taps (the
taps repeat with period 2^l there); as a four-tap gather otherwise. The cost stays linear in the output, and a
band of rows can be read from a window of each level's rows alone (bounded memory for large photos).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

KEYS_A = -0.75  # the cubic convolution of torch's and OpenCV's bicubic; interpolating
DENSE_LIMIT = 1 << 22  # an axis whose (outputs × samples) matrix is this small is read by one matrix product


def level_shapes(H: int, W: int, levels: int, first: int = 0) -> list[tuple[int, int]]:
    """(rows, cols) of each level, finest first: levels at 1:2^first … 1:2^(first + levels − 1)."""
    return [(math.ceil(H / 2 ** l), math.ceil(W / 2 ** l)) for l in range(first, first + levels)]


def _keys(t: np.ndarray) -> np.ndarray:
    """Cubic convolution weights of the taps at offsets -1, 0, 1, 2 for fractional positions t: (n, 4)."""
    a = KEYS_A
    t = t[:, None]
    d = np.abs(np.array([-1.0, 0.0, 1.0, 2.0])[None, :] - t)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


@dataclass(frozen=True)
class AxisTaps:
    """Where one level is read along one axis: ``index`` (n, 4) int64 tap indices (clamped to the grid: the
    border is extended), ``weight`` (n, 4) float64."""

    index: np.ndarray
    weight: np.ndarray

    @classmethod
    def at(cls, positions: np.ndarray, level: int, size: int) -> "AxisTaps":
        """Taps for canvas ``positions`` (n,) float64 on a level of ``size`` samples spaced 2^level."""
        u = np.asarray(positions, dtype=np.float64) / 2.0 ** level - 0.5
        base = np.floor(u)
        weight = _keys(u - base)
        index = np.clip(base.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :], 0, size - 1)
        return cls(index, weight)

    def dense(self, size: int) -> np.ndarray:
        """The same reading as an (n, size) matrix (taps that clamp onto one sample add up)."""
        out = np.zeros((len(self.index), size))
        np.add.at(out, (np.repeat(np.arange(len(self.index)), 4), self.index.ravel()), self.weight.ravel())
        return out


class Upsampler:
    """All levels read on one separable grid of canvas positions (rows, cols) → (rows, cols, levels).

    The taps are computed once per grid (the training grid is fixed), so a step only gathers and sums.
    """

    def __init__(self, shapes: list[tuple[int, int]], rows: np.ndarray, cols: np.ndarray,
                 dtype: torch.dtype = torch.float32, device="cpu", dense_limit: int | None = None, first: int = 0):
        """``shapes``: of :func:`level_shapes` with the same ``first``; ``dense_limit``: the largest (outputs ×
        samples) an axis reads by one matrix product (None: DENSE_LIMIT; 0 for a large photo's bands, whose rows
        are read from windows)."""
        self.shapes = shapes
        limit = DENSE_LIMIT if dense_limit is None else dense_limit
        self.rows = [_Reader(rows, first + l, h, dtype, device, limit) for l, (h, _) in enumerate(shapes)]
        self.cols = [_Reader(cols, first + l, w, dtype, device, limit) for l, (_, w) in enumerate(shapes)]
        self.out_shape = (len(rows), len(cols))

    def level(self, l: int, grid: torch.Tensor, rows: torch.Tensor | None = None, start: int = 0) -> torch.Tensor:
        """Level ``l`` (h, w) read on the grid → (rows, cols); ``rows`` (m,) int64: only those of the grid's rows
        → (m, cols); ``start``: ``grid`` holds the level's rows from ``start`` on only (a window). A grid (B, h, w)
        of B fields fitted together → (B, rows or m, cols): the batch is folded into the other axis of each
        reading."""
        if grid.dim() == 2:
            return self.cols[l](self.rows[l](grid, rows, start).T).T
        B, h, w = grid.shape
        x = self.rows[l](grid.transpose(0, 1).reshape(h, B * w), rows, start)  # (m, B·w)
        m = x.shape[0]
        x = self.cols[l](x.reshape(m * B, w).T)  # (cols, m·B)
        return x.T.reshape(m, B, -1).transpose(0, 1)

    def __call__(self, grids: list[torch.Tensor], rows: torch.Tensor | None = None,
                 starts: list[int] | None = None) -> torch.Tensor:
        """``starts``: each of ``grids`` is a window of its level's rows from there on (:meth:`windows`)."""
        return torch.stack([self.level(l, g, rows, 0 if starts is None else starts[l])
                            for l, g in enumerate(grids)], dim=-1)

    def windows(self, rows: torch.Tensor) -> list[tuple[int, int]]:
        """Per level, the rows [lo, hi) that the grid's rows ``rows`` (m,) int64 read."""
        return [reader.window(rows) for reader in self.rows]


class _Reader:
    """One level read along one axis (the first of its argument): a copy, one matrix product (small axes:
    upsampling a 768×512 training step took 9 ms this way against 28 ms by gathering, backward included), a
    polyphase convolution (large axes at pixel centres: a matrix of a 4032-pixel axis would cost 1,000 products
    an output) or a four-tap gather."""

    def __init__(self, positions: np.ndarray, level: int, size: int, dtype, device, dense_limit: int):
        self.copy = _identity(positions, level, size)
        taps = AxisTaps.at(positions, level, size)
        self.matrix = self.phases = None
        if not self.copy and len(positions) * size <= dense_limit:
            self.matrix = torch.tensor(taps.dense(size), dtype=dtype, device=device)  # torch's aligned memory
        elif not self.copy and _centres(positions, level, size):
            self.phases = torch.tensor(_phases(level), dtype=dtype, device=device)[:, None]
        self.n = len(positions)
        self.index = torch.from_numpy(taps.index).to(device)
        self.weight = torch.from_numpy(taps.weight).to(device=device, dtype=dtype)

    def window(self, subset: torch.Tensor) -> tuple[int, int]:
        """The samples [lo, hi) that positions[subset] read."""
        index = subset[:, None] if self.copy else self.index[subset]
        return int(index.min()), int(index.max()) + 1

    def __call__(self, x: torch.Tensor, subset: torch.Tensor | None = None, start: int = 0) -> torch.Tensor:
        """x: (size, m) → (len(positions), m), or (len(subset), m) at positions[subset] only; with ``start``,
        x holds the samples from ``start`` on only (at least :meth:`window` of ``subset``)."""
        if self.copy:
            return x if subset is None else x[subset - start]
        if self.matrix is not None:
            matrix = self.matrix if subset is None else self.matrix[subset]
            return matrix[:, start:start + len(x)] @ x
        if self.phases is not None and subset is None and start == 0:
            return _polyphase(x.T, self.phases, self.n).T
        index, weight = (self.index, self.weight) if subset is None else (self.index[subset], self.weight[subset])
        return (x[index - start] * weight[:, :, None]).sum(1)


def _centres(positions: np.ndarray, level: int, size: int) -> bool:
    """True when the positions are the pixel centres of an axis that the level covers with ``size`` samples (the
    taps then repeat with period 2^level: :func:`_polyphase`)."""
    n = len(positions)
    return size == -(-n // 2 ** level) and bool(np.all(np.asarray(positions) == np.arange(n) + 0.5))


def _phases(level: int) -> np.ndarray:
    """(2^l, 5) weights: pixel s·k + r (s = 2^l) reads samples k − 2 … k + 2 with row r (the four Keys taps,
    shifted by one where the pixel lies in the upper half of its sample's span)."""
    s = 2 ** level
    r = np.arange(s)
    u = (r + 0.5) / s - 0.5  # position in samples relative to sample k
    base = np.floor(u).astype(np.int64)  # −1 or 0
    out = np.zeros((s, 5))
    out[r[:, None], base[:, None] + 1 + np.arange(4)[None, :]] = _keys(u - base)
    return out


def _polyphase(x: torch.Tensor, phases: torch.Tensor, n: int) -> torch.Tensor:
    """x (m, size) read at the first n pixel centres of its axis → (m, n): the border extended by two samples,
    one convolution with the s phases (s, 1, 5), the phases interleaved."""
    m, size = x.shape
    s = phases.shape[0]
    padded = F.pad(x[:, None], (2, 2), mode="replicate")
    y = F.conv1d(padded, phases)  # (m, s, size)
    return y.transpose(1, 2).reshape(m, size * s)[:, :n]


def _identity(positions: np.ndarray, level: int, size: int) -> bool:
    """True when the positions are exactly the level's own samples (level 0 at the original pixel centres):
    reading them back is a copy, and skipping the gather saves most of a training step's upsampling."""
    return len(positions) == size and bool(np.all(np.asarray(positions) == (np.arange(size) + 0.5) * 2.0 ** level))
