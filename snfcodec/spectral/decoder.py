"""Decoding a version-3 audio file: parse, range-decode the context weights and the coefficients (exact
integers, the same on every machine), then evaluate the field at any sample rate (:mod:`.basis`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..latent import coding as latent_coding
from . import basis, coding, context
from .bitstream import SpectralHeader

SQRT_HALF = math.sqrt(0.5)


@dataclass
class DecodedField:
    header: SpectralHeader
    coefficients: np.ndarray  # (C, F, N) float64: integers × step, channel transform undone


def from_mid_side(coefficients: np.ndarray) -> np.ndarray:
    """(M, S) → (L, R) = ((M + S), (M − S)) / √2 — its own inverse, orthonormal, so errors stay errors."""
    m, s = coefficients[0], coefficients[1]
    return np.stack([(m + s) * SQRT_HALF, (m - s) * SQRT_HALF])


def read_field(data: bytes) -> DecodedField:
    from .. import container
    header, payload = container.read(data)
    if not isinstance(header, SpectralHeader):
        raise ValueError("not a version-3 audio file")
    decoder = latent_coding.new_decoder(payload)
    with latent_coding.reading_payload():
        weights = latent_coding.decode_context(decoder, header.context, header.context_shapes())
        q = coding.decode_coefficients(decoder, (header.channels, header.frames, header.frame),
                                       context.integer_model(weights))
    coefficients = q.astype(np.float64) * header.step
    if header.transform == 1:
        coefficients = from_mid_side(coefficients)
    return DecodedField(header, coefficients)


def sample(field: DecodedField, sample_rate: int) -> np.ndarray:
    """The field at ``sample_rate`` Hz → (round(length · new / old), C) float32 in [−1, 1]."""
    h = field.header
    out = basis.synthesise(field.coefficients, h.frame, h.length, h.sample_rate, sample_rate)
    return np.clip(out, -1.0, 1.0).astype(np.float32)
