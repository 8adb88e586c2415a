"""Batched sinusoidal neural fields (SIREN) with weight-scaling initialisation.

One :class:`BatchedSiren` holds ``tiles`` independent fields of identical shape, stored as stacked tensors so
that all of them run as one batched matrix product: fitting 16 small fields together costs about what one
step of a single small field costs, which is where the codec's speed comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FieldConfig:
    """Shape of every field in a batch.

    ``sine_layers`` counts the linear layers followed by ``sin(omega0 * .)``; one linear output layer follows.
    ``alpha_first`` / ``alpha_hidden`` are the weight-scaling factors of Yeom et al. (ICLR 2025) for the first
    and the hidden sine layers; (1, 1) is plain SIREN. They only affect initialisation, so a decoder never
    needs them.
    """

    in_dim: int
    out_dim: int
    width: int
    sine_layers: int = 3
    omega0: float = 30.0
    alpha_first: float = 1.0
    alpha_hidden: float = 1.0

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of each linear layer, first to last."""
        dims = [self.in_dim] + [self.width] * self.sine_layers + [self.out_dim]
        return list(zip(dims[:-1], dims[1:]))

    def params_per_field(self) -> int:
        return sum(i * o + o for i, o in self.layer_shapes())


def init_bounds(config: FieldConfig) -> list[float]:
    """Half-width of the uniform weight initialisation of each layer.

    First layer U(-α₁/d_in, α₁/d_in); hidden layers U(-αₕ·√(6/n)/ω₀, +); last layer U(-√(6/n)/ω₀, +), never
    scaled: the paper scales every layer except the last.
    """
    bounds = []
    shapes = config.layer_shapes()
    for k, (fan_in, _) in enumerate(shapes):
        if k == 0:
            bounds.append(config.alpha_first / fan_in)
        else:
            base = math.sqrt(6.0 / fan_in) / config.omega0
            bounds.append(base * (config.alpha_hidden if k < len(shapes) - 1 else 1.0))
    return bounds


class BatchedSiren(torch.nn.Module):
    """``tiles`` SIRENs evaluated together.

    weights[k]: (tiles, fan_in, fan_out), biases[k]: (tiles, 1, fan_out).
    """

    def __init__(self, config: FieldConfig, tiles: int, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.config = config
        self.tiles = tiles
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for (fan_in, fan_out), bound in zip(config.layer_shapes(), init_bounds(config)):
            w = (torch.rand(tiles, fan_in, fan_out, generator=generator, dtype=dtype) * 2 - 1) * bound
            # PyTorch's default nn.Linear bias init, unscaled (as in the paper's reference code).
            b_bound = 1.0 / math.sqrt(fan_in)
            b = (torch.rand(tiles, 1, fan_out, generator=generator, dtype=dtype) * 2 - 1) * b_bound
            self.weights.append(torch.nn.Parameter(w))
            self.biases.append(torch.nn.Parameter(b))

    @classmethod
    def concatenate(cls, models: list["BatchedSiren"]) -> "BatchedSiren":
        """One model holding the fields of ``models`` (same config), in order: how several signals are fitted
        together while each starts from exactly the initialisation it would get alone."""
        config = models[0].config
        if any(m.config != config for m in models):
            raise ValueError("only fields of one shape can be batched together")
        out = cls(config, 0)
        out.tiles = sum(m.tiles for m in models)
        for k in range(len(out.weights)):
            out.weights[k] = torch.nn.Parameter(torch.cat([m.weights[k].detach() for m in models]))
            out.biases[k] = torch.nn.Parameter(torch.cat([m.biases[k].detach() for m in models]))
        return out

    def tensors(self) -> list[torch.nn.Parameter]:
        """All parameters in the canonical (container) order: w0, b0, w1, b1, ..."""
        out = []
        for w, b in zip(self.weights, self.biases):
            out += [w, b]
        return out

    @torch.no_grad()
    def start_from(self, base: list[torch.Tensor], spread: list[float]) -> None:
        """Initialise every field at ``base`` (container order, a leading axis of 1) plus ``spread[k]`` times
        its own random initialisation of tensor k: how a learned prior is used (``snfcodec.priors``)."""
        for t, b, s in zip(self.tensors(), base, spread):
            t.mul_(s).add_(b.to(t))

    @torch.no_grad()
    def wrap_phases(self, reference: list[torch.Tensor] | None = None) -> None:
        """Bring every sine layer's biases into [-π/ω₀, π/ω₀) around ``reference`` (container order; zero when
        None).

        sin(ω₀(hW + b)) has period 2π/ω₀ in b, so this leaves the field unchanged while shrinking the range
        the biases (or their residuals from a prior) have to be coded over (first-layer biases start spread
        over several periods).
        """
        period = 2 * math.pi / self.config.omega0
        for k, b in enumerate(list(self.biases)[:-1]):
            ref = reference[2 * k + 1].to(b) if reference is not None else torch.zeros((), dtype=b.dtype)
            b.copy_(torch.remainder(b - ref + period / 2, period) - period / 2 + ref)

    def forward(self, coords: torch.Tensor, tiles: slice | torch.Tensor | None = None,
                tensors: list[torch.Tensor] | None = None) -> torch.Tensor:
        """coords: (T, N, in_dim) local coordinates → (T, N, out_dim).

        ``tiles`` picks T of the fields (a slice or an index tensor); ``tensors`` overrides the parameters (in
        :meth:`tensors` order), which is how quantization-aware fine-tuning feeds quantized weights through.
        """
        return siren(tensors if tensors is not None else self.tensors(), coords, self.config.omega0, tiles)

    def grid(self, rows: torch.Tensor, cols: torch.Tensor, tensors: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Every field on its own separable 2-D grid (see :func:`siren_grid`) → (T, out_dim, Ny·Nx)."""
        return siren_grid(tensors if tensors is not None else self.tensors(), rows, cols, self.config.omega0)

    def columns(self, coords: torch.Tensor, tiles: slice | torch.Tensor | None = None,
                tensors: list[torch.Tensor] | None = None) -> torch.Tensor:
        """:meth:`forward` with points last: coords (T, in_dim, N) → (T, out_dim, N) (see :func:`siren_columns`)."""
        return siren_columns(tensors if tensors is not None else self.tensors(), coords, self.config.omega0, tiles)


def siren_columns(tensors: list[torch.Tensor], coords: torch.Tensor, omega0: float,
                  tiles: slice | torch.Tensor | None = None) -> torch.Tensor:
    """:func:`siren` with points along the last axis: coords (T, in_dim, N) → (T, out_dim, N).

    The same field, laid out for fitting: with the codec's narrow fields (widths 4–30) every elementwise
    operation then runs along thousands of contiguous points instead of a handful of features, which measured
    1.45× faster per step at width 4 and 1.1× at width 19 (docs/scale.md). Decoding keeps :func:`siren`, whose
    float64 results the conformance files pin.
    """
    sel = tiles if tiles is not None else slice(None)
    h = coords
    n_layers = len(tensors) // 2
    for k in range(n_layers):
        w, b = tensors[2 * k][sel].transpose(1, 2), tensors[2 * k + 1][sel].transpose(1, 2)
        if k < n_layers - 1:
            h = torch.sin(torch.baddbmm(b * omega0, w * omega0, h))
        else:
            h = torch.baddbmm(b, w, h)
    return h


def siren_grid(tensors: list[torch.Tensor], rows: torch.Tensor, cols: torch.Tensor, omega0: float) -> torch.Tensor:
    """:func:`siren_columns` on a separable 2-D grid per field: rows (T, Ny), cols (T, Nx) → (T, out_dim, Ny·Nx).

    The first layer's sine of a sum is expanded, sin(a + b) = sin a cos b + cos a sin b, with a from the row
    coordinate (and the bias) and b from the column: four sines on Ny + Nx values per unit replace one on
    Ny·Nx, and the first matrix product disappears. Measured 1.25× per step for 1,000 fields of 32×32 at width 4
    (docs/scale.md); equal to the direct form up to float32 rounding. The sum of products is written as a
    matrix product with an inner size of two, [sin a, cos a] · [cos b, sin b]ᵀ, so that its backward pass is
    two matrix products too instead of four products and sums over the grid (2× faster forward + backward).
    """
    w, b = tensors[0], tensors[1]  # (T, 2, width), (T, 1, width)
    a = omega0 * (w[:, 0, :, None] * rows[:, None, :] + b[:, 0, :, None])  # (T, width, Ny)
    c = omega0 * (w[:, 1, :, None] * cols[:, None, :])  # (T, width, Nx)
    left = torch.stack((torch.sin(a), torch.cos(a)), dim=-1)  # (T, width, Ny, 2)
    right = torch.stack((torch.cos(c), torch.sin(c)), dim=-2)  # (T, width, 2, Nx)
    h = torch.matmul(left, right)  # (T, width, Ny, Nx)
    return siren_columns(tensors[2:], h.reshape(h.shape[0], h.shape[1], -1), omega0)  # the layers after it


def siren(tensors: list[torch.Tensor], coords: torch.Tensor, omega0: float,
          tiles: slice | torch.Tensor | None = None) -> torch.Tensor:
    """The field itself: tensors in container order (w0, b0, w1, b1, ...), each with a leading tile axis.

    ω₀·(hW + b) is computed as h(ω₀W) + ω₀b: scaling the small weight tensors instead of the large activations
    saves a full pass over every activation, forward and backward.
    """
    sel = tiles if tiles is not None else slice(None)
    h = coords
    n_layers = len(tensors) // 2
    for k in range(n_layers):
        w, b = tensors[2 * k][sel], tensors[2 * k + 1][sel]
        if k < n_layers - 1:
            h = torch.sin(torch.baddbmm(b * omega0, h, w * omega0))
        else:
            h = torch.baddbmm(b, h, w)
    return h
