"""The order in which a version-3 audio payload is coded, shared by encoder and decoder: the context weights,
then the coefficients window by window (W frames each; a window's context never reaches into another, so each
decodes with bounded memory), within a window component by component (k = 0 … N − 1), each in an even-frame and
an odd-frame pass (:mod:`snfcodec.spectral.context`), within a pass channel by channel, frame by frame, grouped
by table."""

from __future__ import annotations

import numpy as np

from ..errors import SnfFormatError
from ..latent.context import IntegerContext
from .context import FAMILY, MAX_COEFFICIENT, _padded, magnitude, pass_features, pass_positions


def windows(F: int, W: int):
    """(first, stop) frames of each window."""
    for first in range(0, F, W):
        yield first, min(F, first + W)


def passes(F: int, N: int):
    """(k, p, frames of the pass) in decoding order."""
    for k in range(N):
        for p in (0, 1):
            rows = pass_positions(F, p)
            if len(rows):
                yield k, p, rows


def encode_window(encoder, q: np.ndarray, table: np.ndarray) -> None:
    """Code a window's integer coefficients q (C, F, N) with their tables (C, F, N), in decoding order."""
    C, F, N = q.shape
    for k, p, rows in passes(F, N):
        FAMILY.encode(encoder, q[:, rows, k].reshape(-1), table[:, rows, k].reshape(-1))


def decode_window(decoder, shape: tuple[int, int, int], context: IntegerContext) -> np.ndarray:
    """Read a window's coefficients (C, F, N) int64: per pass, the integer model's tables from what is
    decoded."""
    C, F, N = shape
    q = np.zeros(shape, dtype=np.int64)
    P = _padded(q)
    for k, p, rows in passes(F, N):
        table, _ = context.predict(p, pass_features(P, k, p))
        values = FAMILY.decode(decoder, table).reshape(C, len(rows))
        if np.any(np.abs(values) > MAX_COEFFICIENT):
            raise SnfFormatError(f"a coefficient of component {k} decodes outside ±{MAX_COEFFICIENT}: the "
                                 "payload is corrupt")
        q[:, rows, k] = values
        P[:, rows + 1, k + 2] = magnitude(values)
    return q
