"""The training step's two heavy terms compiled (``torch.compile``, inductor): the rate of the context columns
and the synthesis' squared error, each with its derivative.

Why: a 768×512 step is mostly element-wise work on half a million latents and two hundred thousand pixels (the
Laplace bits' ~20 operations, the sine layers), each a pass over memory in eager mode; the compiler fuses a
term's forward into one or two loops and its backward likewise (docs/latent.md, "Compiled steps": the rate
40 → 22 ms, the synthesis 12 → 9 ms, a soft-stage step 68–76 → 53–56 ms). It costs a compilation: about 15 s
the first time on a machine, ≈ 2 s a process from inductor's on-disk cache after that, so the encoder uses it
only for fits of at least ``presets.LATENT_COMPILE_WORK`` pixel-steps, and only where a C++ compiler is found.
The compiled terms compute the same quantities as the eager ones (the rate through autograd of
:func:`.context._laplace` instead of its hand-written derivative), so a file differs from an uncompiled encode
only by float rounding. Photos trained band by band (:mod:`.bands`) call the same terms on each band, whose
shapes vary (by level, and the last band), so dynamo compiles each term once for the first shape and once
shape-generic after it (a 3.1 MP soft-stage step 575–590 → 476–480 ms, docs/latent.md).
``SNFCODEC_COMPILE=0`` turns it off, ``=1`` on whatever the size.
"""

from __future__ import annotations

import os
import shutil
import warnings
from typing import Callable, TypeVar

import torch

from .context import ContextModel, columns_bits

ENVIRONMENT = "SNFCODEC_COMPILE"
T = TypeVar("T")


def requested(work: float, threshold: float, device: str = "cpu") -> bool:
    """Whether a fit of ``work`` pixel-steps should be compiled: the environment's choice, else whether it is
    large enough to pay for the compilation and a compiler is there. Fits on another device than the CPU are
    compiled only when the environment asks (the compiled terms were measured on CPUs only); a compiler is needed
    either way (triton builds its launchers with one)."""
    choice = os.environ.get(ENVIRONMENT, "")
    if choice == "0":
        return False
    return (choice == "1" or (device == "cpu" and work >= threshold)) and _compiler() is not None


def _compiler() -> str | None:
    """The C++ compiler inductor would call (it honours CXX), if installed."""
    for name in (os.environ.get("CXX"), "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def _rate(model: ContextModel, columns: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return columns_bits(model, columns, traced=True)


def _distortion(synthesis: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((synthesis(x) - target) ** 2)


class Terms:
    """The rate and distortion a training step adds, compiled or not."""

    def __init__(self, compiled: bool):
        self.compiled = compiled
        # uncompiled, the rate with its hand-written derivative is the faster form
        self._rate = torch.compile(_rate) if compiled else columns_bits
        self._distortion = torch.compile(_distortion) if compiled else _distortion

    def rate(self, model: ContextModel, columns: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Bits of :func:`.context.pyramid_columns`' latents under the float model (a scalar)."""
        return self._rate(model, columns)

    def distortion(self, synthesis: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the synthesis of latents x (n, levels) against target (n, C)."""
        return self._distortion(synthesis, x, target)

    def step(self, run: Callable[[], T], reset: Callable[[], None]) -> T:
        """``run()``: a training step's forward and backward through these terms. If the compiled terms fail (a
        compiler without the headers it needs, ...), warn, ``reset()`` the gradients, fall back to the eager
        terms, which compute the same, and run it again."""
        if not self.compiled:
            return run()
        try:
            return run()
        except Exception as error:  # noqa: BLE001 - a real fault raises again, uncompiled, below
            warnings.warn(f"snfcodec: compiling the training step failed ({type(error).__name__}: {error}); "
                          f"fitting without it (set {ENVIRONMENT}=0 to skip the attempt)", RuntimeWarning,
                          stacklevel=2)
            self.__init__(False)
            reset()
            return run()
