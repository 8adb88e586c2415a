"""The entropy model of the latents: a small network that predicts each latent's distribution from latents the
decoder already has, in a float form for training and an integer-exact form for coding.

Decoding order: coarsest level first; within a level two passes, the anchors ((i + j) even) and then the rest.
A latent's context is the 3×3 neighbourhood of its parent (i // 2, j // 2) in the next coarser level, plus,
in the second pass, its four neighbours in its own level (all anchors, already decoded). Every pass is one
vectorised evaluation — 2 × levels passes, no loop over latents. Two networks (one per pass, shared by the
levels), each two ReLU layers of ``width`` and a linear output (μ, ln b) of a Laplace distribution.

Integer-exact form (normative, ``formats/snf.md`` §8): weights are integers in units of 2^-8, latents are
integers, and every product and sum is computed in binary64 on integer values below 2^53, so the result is the
same exact integer whatever the summation order or the BLAS; scaling down is floor division by 2^8.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import tables

COARSE = 9  # parent 3×3
SAME = 4  # up, down, left, right
FEATURES = (COARSE, COARSE + SAME)  # inputs of the pass-0 and pass-1 networks
FRAC = 8  # fixed-point fraction bits of the integer model
MAX_ACT = float(1 << 24)  # activations are clamped to [0, 2^24] (units 2^-8): keeps every sum below 2^53
MAX_WEIGHT = 1 << 15  # |weight| in units 2^-8
MAX_LATENT = 255  # |latent| the format allows
INITIAL_LOG_SCALE = -1.0  # ln b the context networks start from: zero latents cost almost nothing


def checkerboard(h: int, w: int, p: int) -> np.ndarray:
    """Flat indices of pass ``p``'s positions in an h×w level, row-major: (n,) int64."""
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return np.flatnonzero(((i + j) % 2 == p).ravel())


def features(grid: torch.Tensor, parent: torch.Tensor | None) -> torch.Tensor:
    """Context of every position of a level: (h·w, 13); unknown neighbours must be zero in ``grid``."""
    h, w = grid.shape
    cols = []
    if parent is None:
        cols += [grid.new_zeros(h, w)] * COARSE
    else:
        pp = torch.nn.functional.pad(parent[None, None], (1, 1, 1, 1))[0, 0]
        ri = torch.arange(h, device=grid.device) // 2 + 1
        ci = torch.arange(w, device=grid.device) // 2 + 1
        for di in (-1, 0, 1):
            rows = pp[ri + di]
            for dj in (-1, 0, 1):
                cols.append(rows[:, ci + dj])
    g = torch.nn.functional.pad(grid[None, None], (1, 1, 1, 1))[0, 0]
    cols += [g[:-2, 1:-1], g[2:, 1:-1], g[1:-1, :-2], g[1:-1, 2:]]
    return torch.stack(cols, dim=-1).reshape(h * w, COARSE + SAME)


SUBLATTICES = ((0, 0), (1, 1), (0, 1), (1, 0))  # (r0, c0) of grid[r0::2, c0::2]; pass (r0 + c0) % 2


def sublattice_columns(gp, pp, r0: int, c0: int, h: int, w: int) -> list:
    """The context of sublattice (r0, c0) of an h×w level as column views, each ⌈(h − r0)/2⌉ × ⌈(w − c0)/2⌉:
    the parent's 3×3 (none where ``pp`` is None), then in pass 1 the four same-level neighbours.

    gp, pp: the level and its parent each zero-padded by one on every side (torch tensors or NumPy arrays; a
    leading batch axis is kept).
    The same values as :func:`features` at those positions, by strided slices instead of a gather: a
    sublattice's parents are the parent grid itself (the parent of (2i + r0, 2j + c0) is (i, j)), and its
    same-level neighbours are the other sublattices.
    """
    hs, ws = (h - r0 + 1) // 2, (w - c0 + 1) // 2
    cols = [] if pp is None else [pp[..., 1 + di:1 + di + hs, 1 + dj:1 + dj + ws]
                                  for di in (-1, 0, 1) for dj in (-1, 0, 1)]
    if (r0 + c0) % 2 == 1:  # up, down, left, right in the padded level
        rows, centre = slice(r0 + 1, r0 + 1 + 2 * hs, 2), slice(c0 + 1, c0 + 1 + 2 * ws, 2)
        cols += [gp[..., r0:r0 + 2 * hs:2, centre], gp[..., r0 + 2:r0 + 2 + 2 * hs:2, centre],
                 gp[..., rows, c0:c0 + 2 * ws:2], gp[..., rows, c0 + 2:c0 + 2 + 2 * ws:2]]
    return cols


class ContextModel(torch.nn.Module):
    """The float context networks trained with the latents, one per pass: pass p → (μ, ln b) for its positions
    (the image field; the audio spectra use one output, ln b, with ``outputs=1``)."""

    def __init__(self, width: int, generator: torch.Generator, features: tuple[int, ...] = FEATURES,
                 outputs: int = 2, initial_log_scale: float = INITIAL_LOG_SCALE):
        super().__init__()
        self.width = width
        self.nets = torch.nn.ModuleList()
        for d in features:
            net = torch.nn.Sequential(torch.nn.Linear(d, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                                      torch.nn.ReLU(), torch.nn.Linear(width, outputs))
            with torch.no_grad():
                for layer in net[::2]:
                    bound = 1 / np.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.zero_()
                net[-1].weight.mul_(0.1)
                net[-1].bias[-1] = initial_log_scale  # the last output is ln b; a first one, μ, starts at 0
            self.nets.append(net)

    def forward(self, p: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.nets[p](x[:, :FEATURES[p]])
        return out[:, 0], out[:, 1]

    def columns(self, p: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, ln b), (n,) each, of pass ``p``'s network on contexts in a (features, n) layout: three matrix
        products whose long axis is the positions, the layout in which the training rate is fastest."""
        net = self.nets[p]
        return _mlp_columns([(net[k].weight, net[k].bias) for k in (0, 2, 4)], x)

    def tensors(self) -> list[torch.Tensor]:
        """Container order: per net, w0 (in, out), b0, w1, b1, w2, b2."""
        out = []
        for net in self.nets:
            for layer in net[::2]:
                out += [layer.weight.T, layer.bias]
        return out

    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(t.shape) for t in self.tensors()]


class StackedContext:
    """The context networks of B fields of one shape as batched tensors, for the training steps of the B fields
    together (:func:`.train.train_batch`): :meth:`columns` of all at once."""

    def __init__(self, tensors: list[torch.Tensor]):
        """``tensors``: the networks' parameters in module order (per pass: weight (out, in), bias of each of
        the three layers), each stacked over the B fields (a leading axis)."""
        self.layers = [list(zip(tensors[k:k + 6:2], tensors[k + 1:k + 6:2])) for k in range(0, len(tensors), 6)]

    def columns(self, p: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, ln b), (B, n) each, of the B pass-``p`` networks on their contexts x (B, features, n)."""
        return _mlp_columns(self.layers[p], x)


def _mlp_columns(layers, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two ReLU layers and a linear one, ``layers`` three (weight (out, in), bias (out,)) pairs, on columns x
    (≥ in, n) → the outputs' first and last rows (n,) each; with a leading batch axis on all of them, per batch
    entry (batched products)."""
    def affine(k: int, x: torch.Tensor) -> torch.Tensor:
        w, b = layers[k]
        return torch.addmm(b[:, None], w, x) if x.dim() == 2 else torch.baddbmm(b[..., None], w, x)

    x = torch.relu(affine(0, x[..., :layers[0][0].shape[-1], :]))
    out = affine(2, torch.relu(affine(1, x)))
    return out[..., 0, :], out[..., -1, :]


def context_shapes(width: int, features: tuple[int, ...] = FEATURES, outputs: int = 2) -> list[tuple[int, ...]]:
    shapes = []
    for d in features:
        shapes += [(d, width), (width,), (width, width), (width,), (width, outputs), (outputs,)]
    return shapes


def laplace_bits(y: torch.Tensor, mu: torch.Tensor, log_b: torch.Tensor,
                 family: tables.LaplaceTables = tables.LATENT) -> torch.Tensor:
    """Bits of integer-binned values ``y`` under Laplace(μ, b) (the training rate; ln b clamped to the range of
    the tables ``family``, the bits to at most ``MAX_BITS``, both with zero gradient beyond).

    P(bin) = F(d + ½) − F(d − ½), d = |y − μ|, in closed form on either side of d = ½ without cancellation;
    the gradient is written out (:class:`_LaplaceBits`) because autograd's of these ~20 element-wise operations
    cost more than they do.
    """
    if torch.is_grad_enabled() and (y.requires_grad or mu.requires_grad or log_b.requires_grad):
        return _LaplaceBits.apply(y, mu, log_b, *family.ln_b_range)
    return _laplace(y, mu, log_b, *family.ln_b_range, None)


MAX_BITS = 16.0


def _laplace(y, mu, log_b, lo, hi, ctx):
    """The bits; with ``ctx``, also saves d bits / d y and d bits / d ln b on it (zero where a clamp holds)."""
    ln_b = log_b.clamp(lo, hi)
    inv = torch.exp(-ln_b)  # 1 / b
    e = y - mu
    t = (e.abs() - 0.5) * inv  # (d − ½) / b
    # d ≥ ½: p = ½ e^(−t) (1 − e^(−1/b));  d < ½: p = 1 − ½ (A + B), A = e^t, B = e^(−t − 1/b)
    outer = t + math.log(2) - torch.log(-torch.expm1(-inv))
    a, b = torch.exp(t.clamp_max(0)), torch.exp(-t - inv)
    p_inner = 1 - 0.5 * (a + b)
    is_outer = t >= 0
    nats = torch.where(is_outer, outer, -torch.log(p_inner))
    live = nats <= MAX_BITS * math.log(2)
    if ctx is not None:
        d_dist = torch.where(is_outer, inv, (a - b) * inv / (2 * p_inner))
        d_ln_b = torch.where(is_outer, inv / torch.expm1(inv) - t, (b * (t + inv) - a * t) / (2 * p_inner))
        scale = live / math.log(2)
        ctx.save_for_backward(torch.sign(e) * d_dist * scale, d_ln_b * scale * ((log_b >= lo) & (log_b <= hi)))
        ctx.shapes = (y.shape, mu.shape, log_b.shape)
    return torch.where(live, nats / math.log(2), MAX_BITS)


class _LaplaceBits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, mu, log_b, lo, hi):
        return _laplace(y, mu, log_b, lo, hi, ctx)

    @staticmethod
    def backward(ctx, grad):
        d_y, d_ln_b = ctx.saved_tensors
        need = ctx.needs_input_grad
        g_y = grad * d_y if need[0] or need[1] else None
        return (g_y.sum_to_size(ctx.shapes[0]) if need[0] else None,
                (-g_y).sum_to_size(ctx.shapes[1]) if need[1] else None,
                (grad * d_ln_b).sum_to_size(ctx.shapes[2]) if need[2] else None, None, None)


def pyramid_bits(model: ContextModel, grids: list[torch.Tensor]) -> torch.Tensor:
    """Bits of all (noisy or rounded) latents of a pyramid (finest first) under the float model, each with the
    context of its decoding pass: the training rate, as two network evaluations and one Laplace pass over
    every level at once."""
    return columns_bits(model, pyramid_columns(grids))


def pyramid_bits_sampled(model: ContextModel, grids: list[torch.Tensor], stride: int, phase: int) -> torch.Tensor:
    """:func:`pyramid_bits` with the finest level's positions of each pass read every ``stride``-th from
    ``phase`` (0 ≤ phase < stride; in column order: row by row within each sublattice) and counted ``stride``
    times: averaged over the phases it is the exact count. For the rate controller's count of the rounded
    latents, which needs no gradient and is smoothed by a running mean; the finest level is 75 % of the
    positions."""
    y, x0, x1 = pyramid_columns(grids)
    n0 = x0.shape[-1]
    finest = _counts([tuple(grids[0].shape[-2:])])
    total = y.new_zeros(y.shape[:-1])
    for p, (x, yp) in enumerate(((x0, y[..., :n0]), (x1, y[..., n0:]))):
        for cols, weight in ((slice(phase, finest[p], stride), stride), (slice(finest[p], None), 1)):
            mu, log_b = model.columns(p, x[..., cols])
            total = total + weight * laplace_bits(yp[..., cols], mu, log_b).sum(-1)
    return total


def pyramid_columns(grids: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A pyramid's latents and their contexts, (y, x0, x1) of :class:`_Columns` (differentiable). Grids (h, w),
    or (B, h, w) for B pyramids of one shape: then every output has that leading axis."""
    return _Columns.apply(len(grids), *(torch.nn.functional.pad(g, (1, 1, 1, 1)) for g in grids))


def band_columns(band: torch.Tensor, parent: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The latents of a band of rows [a, a + h) of one level (a even) and their contexts, as
    :func:`pyramid_columns` gives them for those positions of the whole pyramid.

    band: (h + 2, w + 2), the band bordered by its level's rows a − 1 and a + h and by zero columns (zero rows
    past the level's edge); parent: (⌈h / 2⌉ + 2, ⌈w / 2⌉ + 2), the parent level's rows a / 2 − 1 … bordered the
    same way, or None for the coarsest level. (Banded training of a large photo: bounded memory, the same bits.)
    """
    return _Columns.apply(1, band, *(() if parent is None else (parent,)))


def columns_bits(model: ContextModel, columns: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                 traced: bool = False) -> torch.Tensor:
    """The bits of :func:`pyramid_columns`' latents under the float model. ``traced``: as plain tensor
    operations differentiated by autograd, the form a compiler fuses (:mod:`.fused`), instead of the
    hand-written derivative that is fastest uncompiled."""
    y, x0, x1 = columns
    (mu0, log_b0), (mu1, log_b1) = model.columns(0, x0), model.columns(1, x1)
    mu, log_b = torch.cat([mu0, mu1], -1), torch.cat([log_b0, log_b1], -1)
    if traced:
        return _laplace(y, mu, log_b, *tables.LATENT.ln_b_range, None).sum(-1)
    return laplace_bits(y, mu, log_b).sum(-1)


def _sublattices(padded: list[torch.Tensor], levels: int):
    """For every non-empty sublattice of each of the first ``levels`` levels (``padded``: the levels, bordered by
    one, and perhaps the next level as their parent): its pass p, its latents' slice of y, its columns' slice
    of x_p, its latents as a view into ``padded``, its context as (row of x_p, view) pairs, and whether it has a
    parent (the coarsest level's parent rows are zero). Forward gathers through these views and backward
    scatters into them."""
    shapes = [(g.shape[-2] - 2, g.shape[-1] - 2) for g in padded[:levels]]
    n0 = _counts(shapes)[0]
    start = [0, 0]  # next column of each pass
    for l, (h, w) in enumerate(shapes):
        pp = padded[l + 1] if l + 1 < len(padded) else None
        for r0, c0 in SUBLATTICES:
            p, hs, ws = (r0 + c0) % 2, (h - r0 + 1) // 2, (w - c0 + 1) // 2
            if not hs * ws:
                continue
            cols = slice(start[p], start[p] + hs * ws)
            own = padded[l][..., 1 + r0:1 + r0 + 2 * hs:2, 1 + c0:1 + c0 + 2 * ws:2]
            views = enumerate(sublattice_columns(padded[l], pp, r0, c0, h, w), start=COARSE if pp is None else 0)
            yield p, slice(p * n0 + cols.start, p * n0 + cols.stop), cols, own, views, pp is not None
            start[p] += hs * ws


def _counts(shapes: list[tuple[int, int]]) -> tuple[int, int]:
    """Positions of pass 0 and pass 1 over all levels."""
    n = [0, 0]
    for h, w in shapes:
        for r0, c0 in SUBLATTICES:
            n[(r0 + c0) % 2] += ((h - r0 + 1) // 2) * ((w - c0 + 1) // 2)
    return n[0], n[1]


class _Columns(torch.autograd.Function):
    """Every level's latents and their contexts as dense matrices: y (n0 + n1,) (pass-0 positions first), x0
    (9, n0) and x1 (13, n1), the contexts of the two passes' positions over all levels; each with a leading
    batch axis B where the levels have one (B pyramids of one shape, fitted together).

    Built from the strided views of :func:`sublattice_columns`; the backward adds each column's gradient into
    one buffer a level, where autograd's slice backward would allocate and fill a whole level per column
    (that overhead was most of the training rate's time at 768×512).
    """

    @staticmethod
    def forward(ctx, levels, *padded):
        """``levels``: how many of ``padded`` (each a level bordered by one) are coded; a last one more is only
        their parent."""
        n0, n1 = _counts([(g.shape[-2] - 2, g.shape[-1] - 2) for g in padded[:levels]])
        batch = padded[0].shape[:-2]
        y = padded[0].new_empty(*batch, n0 + n1)
        xs = (padded[0].new_empty(*batch, COARSE, n0), padded[0].new_empty(*batch, COARSE + SAME, n1))
        for p, ys, cols, own, views, parent in _sublattices(padded, levels):
            y[..., ys].view(own.shape).copy_(own)
            if not parent:
                xs[p][..., :COARSE, cols] = 0
            for k, view in views:
                xs[p][..., k, cols].view(own.shape).copy_(view)
        ctx.levels, ctx.shapes = levels, [tuple(g.shape) for g in padded]
        return (y,) + xs

    @staticmethod
    def backward(ctx, gy, gx0, gx1):
        ref = next(g for g in (gy, gx0, gx1) if g is not None)
        padded = [ref.new_zeros(shape) for shape in ctx.shapes]
        for p, ys, cols, own, views, _ in _sublattices(padded, ctx.levels):
            gx = (gx0, gx1)[p]
            if gx is not None:
                for k, view in views:
                    view.add_(gx[..., k, cols].view(own.shape))
            if gy is not None:
                own.add_(gy[..., ys].view(own.shape))
        return (None, *padded)


class IntegerContext:
    """Integer-exact context networks: per pass, three layers (``features[p]`` → width → width → outputs),
    weights (a list of 6 int arrays a pass, container order, units 2^-8). Two outputs are (μ, ln b) of a
    Laplace centred at μ; one output is ln b of a Laplace centred at zero (table offset 0)."""

    def __init__(self, weights: list[np.ndarray], features: tuple[int, ...] = FEATURES,
                 family: tables.LaplaceTables = tables.LATENT, max_centre: int = MAX_LATENT):
        self.features, self.family, self.max_centre = features, family, max_centre
        self.layers = []
        scale = float(1 << FRAC)
        for p in range(len(features)):
            w = [t.astype(np.float64) for t in weights[6 * p:6 * p + 6]]
            # biases of the later layers pre-multiplied by 2^FRAC (exact: a power of two)
            self.layers.append((w[0], w[1], w[2], w[3] * scale, w[4], w[5] * scale))

    def predict(self, p: int, x) -> tuple[np.ndarray, np.ndarray]:
        """Integer context (n, ≥ features[p]) float64 (array or tensor) → (table index (n,), integer centre m
        (n,)), int64. NumPy, in place: the passes are many and small, where its per-call cost is lowest."""
        w0, b0, w1, b1, w2, b2 = self.layers[p]
        family = self.family
        scale = float(1 << FRAC)
        x = np.asarray(x, dtype=np.float64)
        h = x[:, :self.features[p]] @ w0
        h += b0
        _clamp(h)
        h = h @ w1
        h += b1
        h /= scale
        np.floor(h, out=h)
        _clamp(h)
        o = h @ w2
        o += b2
        o /= scale
        np.floor(o, out=o)
        s = np.floor((family.scales_per_e * (o[:, -1] - family.ln_b0 * scale) + 128) / scale)
        s = np.clip(s, 0, family.num_scales - 1)
        if o.shape[1] == 1:
            return (s * family.offsets).astype(np.int64), np.zeros(len(s), dtype=np.int64)
        mu = np.clip(o[:, 0], -self.max_centre * scale, self.max_centre * scale)
        unit = scale / family.offsets
        fine = np.floor((mu + unit / 2) / unit)  # centre in units 1/offsets, rounded half up
        m = np.floor(fine / family.offsets)
        offset = fine - family.offsets * m
        return (s * family.offsets + offset).astype(np.int64), m.astype(np.int64)


def _clamp(h: np.ndarray) -> None:
    """Activations to [0, MAX_ACT] in place (ufuncs: np.clip's per-call cost is several times theirs)."""
    np.maximum(h, 0.0, out=h)
    np.minimum(h, MAX_ACT, out=h)


def quantize_context(model: ContextModel, shift: list[int]) -> list[np.ndarray]:
    """Float weights → integers in units of 2^-8, each tensor a multiple of 2^shift[i] (coarser steps cost
    fewer bits); the stored symbols are these integers divided by 2^shift[i]."""
    out = []
    for t, e in zip(model.tensors(), shift):
        k = torch.round(t.detach().double() * (1 << FRAC) / (1 << e)).clamp(-(MAX_WEIGHT >> e), MAX_WEIGHT >> e)
        out.append(k.numpy().astype(np.int64))
    return out
