"""The latent field as one trainable module: the pyramid, the synthesis network and the context model, with
the two quantities training trades, distortion (through :class:`~snfcodec.latent.grids.Upsampler`) and rate
(:func:`~snfcodec.latent.context.pyramid_bits`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .context import ContextModel, context_shapes
from .grids import level_shapes
from .synthesis import Synthesis


@dataclass(frozen=True)
class LatentConfig:
    """The shape of a v3 image field (everything a decoder needs besides the image size)."""

    levels: int = 7  # grids at 1:1 … 1:2^(levels-1)
    width: int = 16  # synthesis hidden width
    hidden: int = 2  # synthesis hidden layers
    activation: str = "sine"
    omega0: float = 1.0  # first sine layer's frequency scale (latents are in quantization steps)
    context_width: int = 12  # hidden width of the two context networks
    first: int = 0  # the finest level is 1:2^first (levels 1:2^first … 1:2^(first + levels − 1))


class LatentField(torch.nn.Module):
    def __init__(self, H: int, W: int, C: int, config: LatentConfig, alpha: tuple[float, float],
                 generator: torch.Generator):
        super().__init__()
        self.config = config
        self.shapes = level_shapes(H, W, config.levels, config.first)
        self.grids = torch.nn.ParameterList(torch.nn.Parameter(torch.zeros(h, w)) for h, w in self.shapes)
        self.synthesis = Synthesis(config.levels, config.width, config.hidden, C, config.activation,
                                   config.omega0, alpha, generator)
        self.context = ContextModel(config.context_width, generator)

    def network_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.synthesis.parameters()) + list(self.context.parameters())


def network_size(config: LatentConfig, C: int) -> int:
    """Parameters of the synthesis and context networks of a C-channel field (what a file codes besides its
    latents)."""
    dims = [config.levels] + [config.width] * config.hidden + [C]
    synthesis = sum((a + 1) * b for a, b in zip(dims[:-1], dims[1:]))
    return synthesis + sum(math.prod(s) for s in context_shapes(config.context_width))

