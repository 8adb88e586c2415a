"""Decoding a version-3 audio file: parse, range-decode the context weights and then, window by window, the
coefficients (exact integers, the same on every machine), evaluating the field at any sample rate as each
window arrives (:mod:`.basis`, low-passed below the file's rate by :mod:`.lowpass`) — memory for one window, one
low-pass segment and the output, whatever the duration."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..latent import coding as latent_coding
from ..latent.context import IntegerContext
from . import basis, coding, context, lowpass
from .bitstream import SpectralHeader

SQRT_HALF = math.sqrt(0.5)


@dataclass
class DecodedField:
    header: SpectralHeader
    payload: bytes
    context: IntegerContext


def from_mid_side(coefficients: np.ndarray) -> np.ndarray:
    """(M, S) → (L, R) = ((M + S), (M − S)) / √2 — its own inverse, orthonormal, so errors stay errors."""
    m, s = coefficients[0], coefficients[1]
    return np.stack([(m + s) * SQRT_HALF, (m - s) * SQRT_HALF])


def _weights(decoder, header: SpectralHeader) -> IntegerContext:
    return context.integer_model(latent_coding.decode_context(decoder, header.context, header.context_shapes()))


def read_field(data: bytes) -> DecodedField:
    """Parse a file and its context model (the coefficients are read when the field is sampled)."""
    from .. import container
    header, payload = container.read(data)
    if not isinstance(header, SpectralHeader):
        raise ValueError("not a version-3 audio file")
    with latent_coding.reading_payload():
        model = _weights(latent_coding.new_decoder(payload), header)
    return DecodedField(header, payload, model)


def windows(field: DecodedField) -> Iterator[tuple[int, np.ndarray]]:
    """(first frame, coefficients (C, W, K) float64 of its active components, channel transform undone) of each
    window in turn."""
    h = field.header
    decoder = latent_coding.new_decoder(field.payload)
    with latent_coding.reading_payload():
        _weights(decoder, h)
        for first, stop in coding.windows(h.frames, h.window):
            q = coding.decode_window(decoder, h.channels, stop - first, h.frame, field.context)
            coefficients = q.astype(np.float64) * h.step
            yield first, from_mid_side(coefficients) if h.transform == 1 else coefficients


def _field_blocks(field: DecodedField, sample_rate: int) -> Iterator[tuple[int, np.ndarray]]:
    """The field's sum at ``sample_rate`` Hz as (first sample, samples (n, C) float64, unclamped) blocks in
    order, one a window: a window's samples are final once the next window's first frame has been added (frames
    overlap by one hop)."""
    h = field.header
    N, rate = h.frame, h.sample_rate
    count = basis.output_length(h.length, rate, sample_rate)
    pending, done = np.zeros((0, h.channels)), 0  # unfinished samples from ``done`` on
    for first, coefficients in windows(field):
        stop = first + coefficients.shape[1]
        end = min(count, basis.first_sample(stop + 1, N, rate, sample_rate))  # past the last frame's support
        local = basis.synthesise(coefficients, N, rate, sample_rate, first, done, max(0, end - done))
        local[:len(pending)] += pending[:len(local)]
        final = min(count, basis.first_sample(stop, N, rate, sample_rate)) - done  # before the next window
        yield done, local[:final]
        pending, done = local[final:], done + final
    yield done, pending[:count - done]


def blocks(field: DecodedField, sample_rate: int) -> Iterator[tuple[int, np.ndarray]]:
    """The field at ``sample_rate`` Hz as (first sample, samples (n, C) float32 in [−1, 1]) blocks in order. At
    or above the file's rate the field is evaluated at the new instants; below it, it is low-passed at the new
    Nyquist frequency first (:mod:`.lowpass`)."""
    h = field.header
    if sample_rate < h.sample_rate:
        count = basis.output_length(h.length, h.sample_rate, sample_rate)
        source = lowpass.downsample(_field_blocks(field, h.sample_rate), h.length, h.channels, h.sample_rate,
                                    sample_rate, count)
    else:
        source = _field_blocks(field, sample_rate)
    for start, block in source:
        yield start, np.clip(block, -1.0, 1.0).astype(np.float32)


def sample(field: DecodedField, sample_rate: int) -> np.ndarray:
    """The field at ``sample_rate`` Hz → (round(length · new / old), C) float32 in [−1, 1]."""
    h = field.header
    out = np.empty((basis.output_length(h.length, h.sample_rate, sample_rate), h.channels), dtype=np.float32)
    for start, block in blocks(field, sample_rate):
        out[start:start + len(block)] = block
    return out
