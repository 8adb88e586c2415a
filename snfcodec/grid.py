"""Coordinate grids, tiling and blended rendering.

A signal of shape ``shape`` (H, W for images; N for audio) lives on the continuous canvas
``[0, shape[0]) × [0, shape[1]) ...``; sample ``i`` of the original sits at the centre ``i + 0.5``. The canvas is
cut into tiles of ``tile`` samples, one small field per tile. Neighbouring tiles overlap by ``margin`` samples on
each side of every boundary and are cross-faded with a smoothstep ramp whose weights sum to one everywhere
(a partition of unity), so the decoded signal is continuous across tile boundaries at any sampling density.
The encoder fits the *blended* output, so what it optimises is exactly what the decoder produces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class TileLayout:
    """Regular tiling of a D-dimensional canvas.

    shape: samples per dimension; tile: core tile size per dimension; margin: cross-fade half-width per
    dimension (``2 * margin <= tile``).
    """

    shape: tuple[int, ...]
    tile: tuple[int, ...]
    margin: tuple[int, ...]

    def __post_init__(self):
        if not (len(self.shape) == len(self.tile) == len(self.margin)):
            raise ValueError("shape, tile and margin need one entry per dimension")
        for n, t, m in zip(self.shape, self.tile, self.margin):
            if n < 1 or t < 1 or m < 0 or 2 * m > t:
                raise ValueError(f"invalid tiling: shape={self.shape} tile={self.tile} margin={self.margin}")

    @property
    def counts(self) -> tuple[int, ...]:
        """Tiles per dimension."""
        return tuple(math.ceil(n / t) for n, t in zip(self.shape, self.tile))

    @property
    def num_tiles(self) -> int:
        return math.prod(self.counts)

    def axis_weights(self, d: int, k: int, pos: np.ndarray) -> np.ndarray:
        """Blend weight of tile ``k`` along dimension ``d`` at canvas positions ``pos`` (float64)."""
        t, m, last = self.tile[d], self.margin[d], self.counts[d] - 1
        a, b = k * t, (k + 1) * t
        w = np.ones_like(pos)
        if m == 0:
            if k > 0:
                w *= pos >= a
            if k < last:
                w *= pos < b
            return w
        if k > 0:
            w *= _smoothstep((pos - (a - m)) / (2 * m))
        if k < last:
            w *= 1.0 - _smoothstep((pos - (b - m)) / (2 * m))
        return w

    def axis_windows(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        """Half-open canvas intervals [lo, hi) outside which each tile row along dimension ``d`` has zero weight:
        two (counts[d],) float64 arrays (the first row starts at -inf, the last ends at +inf)."""
        k = np.arange(self.counts[d])
        t, m = self.tile[d], self.margin[d]
        return np.where(k > 0, k * t - m, -np.inf), np.where(k < len(k) - 1, (k + 1) * t + m, np.inf)

    def axis_local(self, d: int, k: int, pos: np.ndarray) -> np.ndarray:
        """Tile-local coordinate: the tile's core maps to [-1, 1] (the last tile keeps the nominal scale)."""
        half = self.tile[d] / 2
        return (pos - (k * self.tile[d] + half)) / half


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def pixel_centres(n: int) -> np.ndarray:
    """Canvas positions of the ``n`` original samples along one axis: (n,) float64."""
    return np.arange(n, dtype=np.float64) + 0.5


@dataclass(frozen=True)
class Regular:
    """Evenly spaced positions ((first + j · stride) + a) · step + b for j = 0..n-1, held as six numbers.

    An axis of a long recording (173 M samples an hour) would cost 8 bytes a sample as an array; this one is
    sliced, searched and expanded piece by piece, and its values are bit for bit those of the array formulas
    it replaces (:func:`pixel_grid`; ``(np.arange(n) + a) * step + b``)."""

    n: int
    a: float = 0.5
    step: float = 1.0
    b: float = 0.0
    first: int = 0
    stride: int = 1

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: slice) -> Regular:
        if not isinstance(key, slice):
            raise TypeError("a regular axis is sliced, not indexed")
        start, stop, k = key.indices(self.n)
        count = len(range(start, stop, k))
        return Regular(count, self.a, self.step, self.b, self.first + start * self.stride, self.stride * k)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.values(0, self.n)

    def values(self, lo: int, hi: int) -> np.ndarray:
        """Positions lo..hi-1: (hi - lo,) float64."""
        index = (self.first + np.arange(lo, hi, dtype=np.int64) * self.stride).astype(np.float64)
        return (index + self.a) * self.step + self.b

    def searchsorted(self, v: np.ndarray, side: str = "left") -> np.ndarray:
        """np.searchsorted of the positions (step > 0), exactly: an estimate, then corrected against the values."""
        v = np.asarray(v, dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            guess = ((v - self.b) / self.step - self.a - self.first) / self.stride
        j = np.nan_to_num(np.floor(guess), nan=0.0, posinf=self.n, neginf=0.0)
        j = np.clip(j - 2, 0, self.n).astype(np.int64)
        for _ in range(5):
            value = ((self.first + j * self.stride).astype(np.float64) + self.a) * self.step + self.b
            below = value < v if side == "left" else value <= v
            j = j + ((j < self.n) & below)
        return j


def pixel_grid(n: int) -> Regular:
    """:func:`pixel_centres` without the array: the training grid of a signal of any length."""
    return Regular(n)


def resample_axis(start: float, length: float, n_out: int) -> np.ndarray:
    """Centres of ``n_out`` equal cells covering the canvas interval [start, start + length): (n_out,) float64."""
    return start + (np.arange(n_out, dtype=np.float64) + 0.5) * (length / n_out)


@dataclass
class _Axis:
    """Where each tile row along one dimension touches the sample positions; its tables (local coordinates,
    blend weights, sample indices, padded to ``width``) are computed for the rows asked for, so that a plan over
    an hour of audio (58 k tiles of 3,000 samples) holds O(tiles) numbers, not O(samples)."""

    positions: np.ndarray | Regular  # (n,) float64, sorted
    span: np.ndarray  # (K, 2) int64: [first, last + 1) of the samples the tile row touches
    width: int  # the most samples one tile row touches (at least 1)

    def tables(self, layout: TileLayout, d: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """local (R, L) float64, weight (R, L) float64 (0 on padding) and index (R, L) int64 of the given rows."""
        unique, inverse = np.unique(rows, return_inverse=True)
        local = np.zeros((len(unique), self.width))
        weight = np.zeros((len(unique), self.width))
        index = np.zeros((len(unique), self.width), dtype=np.int64)
        for j, k in enumerate(unique.tolist()):
            lo, hi = self.span[k]
            p = np.asarray(self.positions[lo:hi])
            local[j, : hi - lo] = layout.axis_local(d, k, p)
            weight[j, : hi - lo] = layout.axis_weights(d, k, p)
            index[j, : hi - lo] = np.arange(lo, hi)
        return local[inverse], weight[inverse], index[inverse]


class SamplePlan:
    """Which output samples each tile contributes to, with local coordinates and blend weights.

    Built for a separable grid (one sorted position array per dimension), so that crops, other resolutions and
    the training grid are all the same operation.
    """

    def __init__(self, layout: TileLayout, axes: Sequence[np.ndarray]):
        if len(axes) != len(layout.shape):
            raise ValueError("one axis per dimension")
        self.layout = layout
        self.positions = tuple(pos if isinstance(pos, Regular) else np.asarray(pos, dtype=np.float64) for pos in axes)
        self.out_shape = tuple(len(a) for a in axes)
        self._axes: list[_Axis] = []
        for d, pos in enumerate(self.positions):
            lo, hi = layout.axis_windows(d)
            search = pos.searchsorted if isinstance(pos, Regular) else lambda v, side: np.searchsorted(pos, v, side)
            span = np.stack([search(lo, "left"), search(hi, "left")], axis=1)
            self._axes.append(_Axis(pos, span.astype(np.int64), max(1, int((span[:, 1] - span[:, 0]).max()))))

    @property
    def points_per_tile(self) -> int:
        return math.prod(a.width for a in self._axes)

    def axis_local(self, d: int) -> np.ndarray:
        """Local coordinates along dimension ``d`` of each tile row (padding 0): (tiles along d, L) float64.

        A tile's points in :meth:`gather` are the C-order grid of its rows along every dimension."""
        return self._axes[d].tables(self.layout, d, np.arange(self.layout.counts[d]))[0]

    def tile_spans(self, d: int) -> np.ndarray:
        """[first, last + 1) sample indices along dimension ``d`` that each tile row touches: (K, 2) int64."""
        return self._axes[d].span

    def active_tiles(self) -> np.ndarray:
        """Flat ids (C order over ``layout.counts``) of tiles that touch the grid: (T,) int64."""
        mask = np.ones((), dtype=bool)
        for a in self._axes:
            mask = np.logical_and.outer(mask, a.span[:, 1] > a.span[:, 0])
        return np.flatnonzero(mask.reshape(-1))

    def gather(self, tiles: np.ndarray, dtype: torch.dtype = torch.float32):
        """Tables for the given flat tile ids.

        Returns coords (T, P, D), weights (T, P, 1) and flat output indices (T, P), P = points_per_tile.
        """
        multi = np.unravel_index(tiles, self.layout.counts)
        D = len(self._axes)
        T = len(tiles)
        full = (T,) + tuple(a.width for a in self._axes)
        coords = np.empty(full + (D,))
        weights = np.ones(full)
        flat = np.zeros(full, dtype=np.int64)
        for d, (a, k) in enumerate(zip(self._axes, multi)):
            local, weight, index = a.tables(self.layout, d, k)
            coords[..., d] = _expand_row(local, d, D)
            weights = weights * _expand_row(weight, d, D)
            flat = flat * self.out_shape[d] + _expand_row(index, d, D)
        P = self.points_per_tile
        return (torch.from_numpy(coords.reshape(T, P, D)).to(dtype),
                torch.from_numpy(weights.reshape(T, P, 1)).to(dtype),
                torch.from_numpy(flat.reshape(T, P)))

    def batches(self, max_points: int) -> Iterator[np.ndarray]:
        """Active tile ids in groups of at most ``max_points`` evaluated points (at least one tile each)."""
        tiles = self.active_tiles()
        per = max(1, max_points // self.points_per_tile)
        for i in range(0, len(tiles), per):
            yield tiles[i : i + per]


def _expand_row(rows: np.ndarray, d: int, D: int) -> np.ndarray:
    """(T, L) → shape (T, 1.., L, ..1) with L on axis d + 1."""
    shape = [rows.shape[0]] + [1] * D
    shape[d + 1] = rows.shape[1]
    return rows.reshape(shape)


def render(field: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], plan: SamplePlan, channels: int,
           dtype: torch.dtype = torch.float64, max_points: int = 1 << 17) -> torch.Tensor:
    """Evaluate a tiled field on the plan's grid in bounded memory.

    field(coords (T, P, D), tile_ids (T,)) → (T, P, channels). Returns (prod(out_shape), channels).
    """
    out = torch.zeros(math.prod(plan.out_shape), channels, dtype=dtype)
    for tiles in plan.batches(max_points):
        coords, weights, flat = plan.gather(tiles, dtype)
        values = field(coords, torch.from_numpy(tiles)) * weights
        out.index_add_(0, flat.reshape(-1), values.reshape(-1, channels))
    return out
