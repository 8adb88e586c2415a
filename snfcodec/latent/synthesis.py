"""The synthesis network: a per-pixel field over the interpolated latents, (n, levels) → (n, C).

Sine layers (``activation="sine"``) start from the SIREN initialisation scaled by the weight-scaling factor α
of Yeom et al. (ICLR 2025): layer k computes sin(W x + b) with W ~ α · U(−c, c), c = ω₀ / fan_in for the
first layer and √(6 / fan_in) for the others (α = (α_first, α_hidden)); the output layer is linear and not
scaled. ReLU and GELU
variants (He-uniform start) exist to measure the choice against (``docs/latent.md``).
"""

from __future__ import annotations

import math

import torch

_ACT = {"sine": torch.sin, "relu": torch.relu, "gelu": torch.nn.functional.gelu}
ACTIVATIONS = tuple(_ACT)  # the order gives each its code in the file


class Synthesis(torch.nn.Module):
    def __init__(self, in_dim: int, width: int, hidden: int, out_dim: int, activation: str, omega0: float,
                 alpha: tuple[float, float], generator: torch.Generator):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}")
        self.activation = activation
        dims = [in_dim] + [width] * hidden + [out_dim]
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        with torch.no_grad():
            for k, layer in enumerate(self.layers):
                n = layer.in_features
                last = k == len(self.layers) - 1
                if activation == "sine" and not last:
                    c = alpha[0] * omega0 / n if k == 0 else alpha[1] * math.sqrt(6 / n)
                else:
                    c = math.sqrt(6 / n) if not last else math.sqrt(6 / n) * 0.1
                layer.weight.uniform_(-c, c, generator=generator)
                layer.bias.uniform_(-1 / math.sqrt(n), 1 / math.sqrt(n), generator=generator)
            self.layers[-1].bias.fill_(0.5)  # outputs are pixels in [0, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run(self.tensors(), self.activation, x)

    def tensors(self) -> list[torch.Tensor]:
        """Container order: w0 (in, out), b0, w1, b1, ..."""
        out = []
        for layer in self.layers:
            out += [layer.weight.T, layer.bias]
        return out


def synthesis_shapes(in_dim: int, width: int, hidden: int, out_dim: int) -> list[tuple[int, ...]]:
    dims = [in_dim] + [width] * hidden + [out_dim]
    shapes = []
    for a, b in zip(dims[:-1], dims[1:]):
        shapes += [(a, b), (b,)]
    return shapes


def run(tensors: list[torch.Tensor], activation: str, x: torch.Tensor) -> torch.Tensor:
    """The network from decoded tensors (container order): the decoder's forward, same arithmetic. With a leading
    batch axis on x (B, n, in) and on every tensor, B networks at once (a batched fit, :func:`.train.train_batch`)."""
    act = _ACT[activation]
    n = len(tensors) // 2
    for k in range(n):
        w, b = tensors[2 * k], tensors[2 * k + 1]
        x = torch.addmm(b, x, w) if x.dim() == 2 else torch.baddbmm(b[:, None], x, w)
        if k < n - 1:
            x = act(x)
    return x
