"""The order in which a version-3 audio payload is coded, shared by encoder and decoder: the context weights,
then the coefficients window by window (W frames each; a window's context never reaches into another, so each
decodes with bounded memory). A window starts with its active component count K (uniform over 0 … N: the
components from K up are zero in every channel and frame, and not coded), then components k = 0 … K − 1 in
turn, each in an even-frame and an odd-frame pass (:mod:`snfcodec.spectral.context`), within a pass channel by
channel, frame by frame, grouped by table."""

from __future__ import annotations

import constriction
import numpy as np

from ..latent.context import IntegerContext
from .context import FAMILY, PassGrid, pass_positions


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


def active(q: np.ndarray) -> int:
    """Components up to the last one with a nonzero coefficient in the window q (C, F, N)."""
    nonzero = np.flatnonzero(np.any(q != 0, axis=(0, 1)))
    return int(nonzero[-1]) + 1 if len(nonzero) else 0


def encode_window(encoder, q: np.ndarray, table: np.ndarray, N: int) -> None:
    """Code a window's integer coefficients q (C, F, K) of its K = active(q) components, with their tables
    (C, F, K), in decoding order (N: the components a frame has)."""
    C, F, K = q.shape
    encoder.encode(np.array([K], dtype=np.int32), constriction.stream.model.Uniform(N + 1))
    for k, p, rows in passes(F, K):
        FAMILY.encode(encoder, q[:, rows, k].reshape(-1), table[:, rows, k].reshape(-1))


def decode_window(decoder, C: int, F: int, N: int, context: IntegerContext) -> np.ndarray:
    """Read a window of C channels × F frames of N components: its active component count K, then per pass the
    integer model's tables from what is decoded → its coefficients (C, F, K) int64 (the rest are zero; every
    value lies within ±MAX_COEFFICIENT, the tables' alphabet)."""
    K = int(decoder.decode(constriction.stream.model.Uniform(N + 1), 1)[0])
    q = np.zeros((C, F, K), dtype=np.int64)
    grid = PassGrid(C, F, K)
    for k, p, rows in passes(F, K):
        table, _ = context.predict(p, grid.features(k, p))
        values = FAMILY.decode(decoder, table).reshape(C, len(rows))
        q[:, p::2, k] = values
        grid.record(k, p, values)
    return q
