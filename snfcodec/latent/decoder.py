"""Decoding a version-3 file: parse, range-decode the networks and the latents (exact integers, the same on
every machine), then sample the field at any grid of canvas positions, band by band, in float64 on the CPU.

Every operand of a matrix product is copied into torch's own (64-byte aligned) memory first: MKL's summation
order can depend on an operand's alignment, and NumPy's buffers are aligned to 16 bytes only, so products on
them may differ in the last bit from one call to the next."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import bitstream, coding, tables
from .bitstream import LatentHeader
from .context import IntegerContext
from .grids import Upsampler, level_shapes
from .synthesis import run

BAND_VALUES = 1 << 21  # interpolated latents held at a time


@dataclass
class DecodedField:
    header: LatentHeader
    grids: list[np.ndarray]  # (h, w) int64 per level, finest first
    synthesis: list[torch.Tensor]  # float64, container order


def read_field(data: bytes) -> DecodedField:
    from .. import container
    header, payload = container.read(data)
    if not isinstance(header, LatentHeader):
        raise ValueError("not a version-3 file")
    decoder = coding.new_decoder(payload)
    with coding.reading_payload():
        synth = []
        for code, shape in zip(header.synthesis, header.synthesis_shapes()):
            k = tables.decode_weights(decoder, math.prod(shape), code.lo, code.hi, code.scale_index)
            synth.append(torch.tensor(bitstream.dequantize_synthesis(k, code)).reshape(shape))
        context = IntegerContext(coding.decode_context(decoder, header.context, header.context_shapes()))
        shapes = level_shapes(header.height, header.width, header.config.levels, header.config.first)
        grids = coding.walk(shapes, context, coding.decoder_chooser(decoder))
    return DecodedField(header, grids, synth)


def sample(field: DecodedField, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The field at canvas positions rows × cols → (len(rows), len(cols), C) uint8."""
    header = field.header
    shapes = [g.shape for g in field.grids]
    grids = [torch.tensor(g, dtype=torch.float64) for g in field.grids]
    out = np.empty((len(rows), len(cols), header.channels), dtype=np.uint8)
    band = max(1, BAND_VALUES // (len(cols) * len(shapes)))
    up = Upsampler(shapes, rows, cols, torch.float64, first=header.config.first)  # its taps once; each band its rows
    for r in range(0, len(rows), band):
        part = rows[r:r + band]
        x = up(grids, torch.arange(r, r + len(part))).reshape(len(part) * len(cols), -1)
        with torch.no_grad():
            y = run(field.synthesis, header.config.activation, x)
        out[r:r + len(part)] = to_uint8(y.numpy()).reshape(len(part), len(cols), -1)
    return out


def to_uint8(values: np.ndarray) -> np.ndarray:
    """[0, 1] floats → uint8 (round half to even)."""
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)
