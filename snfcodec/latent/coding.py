"""The order in which a version-3 payload is coded, shared by encoder and decoder so that the two cannot drift:
synthesis tensors, context tensors, then the latents level by level (coarsest first), each level in two
checkerboard passes, every pass one vectorised prediction by the integer context model
(:class:`~snfcodec.latent.context.IntegerContext`) followed by its residuals, grouped by table
(:mod:`snfcodec.latent.tables`)."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable

import constriction
import numpy as np

from ..errors import SnfFormatError
from . import tables
from .context import COARSE, MAX_LATENT, SUBLATTICES, IntegerContext, checkerboard, sublattice_columns

# choose(level, positions, table, centre) → the pass's latents (n,) int64; the encoder picks and records
# them, the decoder reads them from the stream.
Chooser = Callable[[int, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


PREDICT_POSITIONS = 1 << 18  # latents whose contexts are predicted (and, encoding, whose values are chosen) at once


def walk(shapes: list[tuple[int, int]], context: IntegerContext, choose: Chooser) -> list[np.ndarray]:
    """Visit every latent in decoding order → the levels (h, w) int64, finest first."""
    grids = [np.zeros(s, dtype=np.int64) for s in shapes]
    for l in reversed(range(len(shapes))):
        h, w = shapes[l]
        pp = np.pad(grids[l + 1].astype(np.float64), 1) if l + 1 < len(shapes) else None
        flat = grids[l].reshape(-1)
        table, centre = np.empty((h, w), np.int64), np.empty((h, w), np.int64)
        for p in (0, 1):
            where = checkerboard(h, w, p)
            if not len(where):
                continue
            gp = np.pad(grids[l].astype(np.float64), 1)  # pass 1 sees the anchors pass 0 chose
            for r0, c0 in SUBLATTICES[2 * p:2 * p + 2]:
                hs, ws = (h - r0 + 1) // 2, (w - c0 + 1) // 2
                if hs * ws == 0:
                    continue
                cols = sublattice_columns(gp, pp, r0, c0, h, w)
                features = len(cols) if pp is not None else COARSE + len(cols)
                step = max(1, PREDICT_POSITIONS // ws)
                for i in range(0, hs, step):  # in bands of rows: bounded memory, the same integers
                    n = min(step, hs - i)
                    x = np.zeros((features, n, ws))
                    for k, c in enumerate(cols, start=features - len(cols)):  # no parent: its nine stay zero
                        x[k] = c[i:i + n]
                    predicted = context.predict(p, x.reshape(features, n * ws).T)
                    table[r0::2, c0::2][i:i + n], centre[r0::2, c0::2][i:i + n] = (
                        v.reshape(n, ws) for v in predicted)
            flat[where] = choose(l, where, table.reshape(-1)[where], centre.reshape(-1)[where])
    return grids


def encoder_chooser(latents: list[np.ndarray], record, deadzone: float = 0.0, slope: float = 0.0,
                    weights=None) -> Chooser:
    """Round the trained latents (float (h, w) each), clamp them to what the tables and the format can code, and
    append (residuals, tables) of each pass to ``record``. Two ways to spend fewer bits than plain rounding:

    - ``slope`` > 0 (the trim the encoder tries first): a latent moves one step towards its predicted centre
      where that saves bits at less than ``slope`` distortion a bit: weights[l] · ((y − q′)² − (y − q)²) <
      slope · (bits(q) − bits(q′)), weights[l] the distortion a squared unit change of a level-l latent causes
      (so the latents whose move saves most for least go first);
    - ``deadzone`` > 0: every latent rounded towards the centre by that much (a blunt fallback: it moves first the
      latents that sit half a step from the centre, which save nothing).
    """

    def pick(y, table, centre, weight):
        exact_centre = centre + (table % tables.LATENT.offsets) / tables.LATENT.offsets
        d = y - exact_centre
        q = np.rint(exact_centre + np.sign(d) * np.maximum(np.abs(d) - deadzone, 0.0)).astype(np.int64)
        radius = tables.LATENT.radius
        lo, hi = np.maximum(centre - radius, -MAX_LATENT), np.minimum(centre + radius, MAX_LATENT)
        q = np.clip(q, lo, hi)
        if slope > 0:
            toward = np.clip(q - np.sign(q - exact_centre).astype(np.int64), lo, hi)
            saved = (tables.LATENT.symbol_bits(q - centre, table)
                     - tables.LATENT.symbol_bits(toward - centre, table))
            cost = weight * ((y - toward) ** 2 - (y - q) ** 2)
            q = np.where((saved > 0) & (cost < slope * saved), toward, q)
        return q

    def choose(l, where, table, centre):
        q = np.empty(len(where), dtype=np.int64)
        flat = latents[l].reshape(-1)
        for a in range(0, len(where), PREDICT_POSITIONS):  # a dozen temporaries a position: in bands
            part = slice(a, a + PREDICT_POSITIONS)
            q[part] = pick(flat[where[part]], table[part], centre[part], None if weights is None else weights[l])
        record.append(((q - centre).astype(np.int32), table.astype(np.int32)))  # ±radius, < 2^8 tables
        return q

    return choose


def decoder_chooser(decoder) -> Chooser:
    def choose(l, where, table, centre):
        q = centre + tables.LATENT.decode(decoder, table)
        if np.any(np.abs(q) > MAX_LATENT):
            raise SnfFormatError(f"a latent of level {l} decodes outside ±{MAX_LATENT}: the payload is corrupt")
        return q

    return choose


def new_encoder():
    return constriction.stream.queue.RangeEncoder()


def new_decoder(payload: bytes):
    if len(payload) % 4:
        raise SnfFormatError(f"payload length {len(payload)} is not a multiple of 4")
    return constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))


def finish(encoder) -> bytes:
    return encoder.get_compressed().astype("<u4").tobytes()


# ---- network weights (shared with the audio spectra, :mod:`snfcodec.spectral`) ----------------------------

@dataclass(frozen=True)
class TensorCode:
    """How one network tensor is stored: ``exponent`` (synthesis: step 2^-exponent; context: symbols are
    multiplied by 2^exponent), the Laplace scale index of its symbols and their range [lo, hi]."""

    exponent: int
    scale_index: int
    lo: int
    hi: int


def context_codes(weights: list[np.ndarray], shift: int) -> tuple[list[np.ndarray], list[TensorCode]]:
    """Integer context weights that are multiples of 2^shift → (stored symbols, their codes)."""
    codes = [TensorCode(shift, tables.fit_scale_index(w), int(w.min()), int(w.max())) for w in weights]
    return [w.ravel() for w in weights], codes


def weights_bits(symbols: list[np.ndarray], codes: list[TensorCode]) -> float:
    return sum(tables.weight_bits(s, c.lo, c.hi, c.scale_index) for s, c in zip(symbols, codes))


def encode_weights(encoder, symbols: list[np.ndarray], codes: list[TensorCode]) -> None:
    for s, c in zip(symbols, codes):
        tables.encode_weights(encoder, s, c.lo, c.hi, c.scale_index)


def decode_context(decoder, codes, shapes) -> list[np.ndarray]:
    """The integer context weights (units 2^-8) of ``codes`` with their ``shapes``."""
    return [tables.decode_weights(decoder, math.prod(shape), c.lo, c.hi, c.scale_index).reshape(shape)
            << c.exponent for c, shape in zip(codes, shapes)]


@contextlib.contextmanager
def reading_payload():
    """Turn whatever a corrupt payload makes the range decoder raise into :class:`SnfFormatError`."""
    try:
        yield
    except SnfFormatError:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit):  # GeneratorExit: a reader that stopped early
        raise
    except BaseException as exc:  # constriction's Rust panics derive from BaseException
        raise SnfFormatError(f"entropy-coded payload is corrupt: {exc}") from None
