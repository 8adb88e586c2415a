"""The ``.snf`` version-3 container: a latent-grid image field. Normative text: ``formats/snf.md`` §8.

Same prefix and trailing CRC-32 as versions 1 and 2 (:mod:`snfcodec.container`), then a fixed header (image
size, channels, the field's shape), one record per network tensor (its quantization and entropy model), and
one range-coded payload: the synthesis weights, the context weights, then the latents level by level (coarsest
first), pass by pass. The reader checks every count and size against hard limits before it allocates.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import SnfFormatError
from . import tables
from .coding import TensorCode
from .context import FRAC, MAX_WEIGHT, context_shapes
from .field import LatentConfig
from .grids import level_shapes
from .synthesis import ACTIVATIONS, synthesis_shapes

VERSION = 3
MAX_SIDE = 1 << 16  # pixels along one side
MAX_PIXELS = 1 << 28
MAX_LEVELS = 12
MAX_FIRST = 4  # the finest level at most 1:16
MAX_WIDTH = 64  # synthesis and context widths
MAX_HIDDEN = 4
MAX_SYNTH_SHIFT = 16  # synthesis steps 2^-0 … 2^-16
_PREFIX = struct.Struct("<4sBBHII")  # as container: magic, version, kind, flags, header_length, payload_length
_FIXED = struct.Struct("<IIBBBBBBBBf")  # H, W, channels, layout, levels, width, hidden, activation, context
# width, first (the finest level's exponent; reserved = 0 before it was defined, so older files read as first 0), ω₀
_RECORD = struct.Struct("<BBhh")  # per tensor: exponent (synthesis: step 2^-q; context: weights are symbol · 2^q
# in units 2^-8), scale index, lo, hi
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class LatentHeader:
    height: int
    width: int
    channels: int
    layout_code: int
    config: LatentConfig
    synthesis: tuple[TensorCode, ...]
    context: tuple[TensorCode, ...]

    version = VERSION
    kind = 1  # images only (container.KIND_IMAGE)
    sample_rate = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def synthesis_shapes(self) -> list[tuple[int, ...]]:
        c = self.config
        return synthesis_shapes(c.levels, c.width, c.hidden, self.channels)

    def context_shapes(self) -> list[tuple[int, ...]]:
        return context_shapes(self.config.context_width)

    @property
    def parameters(self) -> int:
        """Network parameters (synthesis and context) the file stores."""
        return sum(math.prod(s) for s in self.synthesis_shapes() + self.context_shapes())

    def to_dict(self) -> dict:
        from ..container import IMAGE_LAYOUTS
        c = self.config
        latents = sum(h * w for h, w in level_shapes(self.height, self.width, c.levels, c.first))
        return {"version": VERSION, "kind": "image", "shape": [self.height, self.width], "channels": self.channels,
                "layout": IMAGE_LAYOUTS[self.layout_code], "sample_rate": 0, "field": asdict(self.config),
                "latents": latents, "parameters": self.parameters,
                "tensors": [dict(asdict(t), shape=list(s), role=role)
                            for role, codes, shapes in (("synthesis", self.synthesis, self.synthesis_shapes()),
                                                        ("context", self.context, self.context_shapes()))
                            for t, s in zip(codes, shapes)],
                "prior": None}


def write(header: LatentHeader, payload: bytes) -> bytes:
    c = header.config
    body = _FIXED.pack(header.height, header.width, header.channels, header.layout_code, c.levels, c.width,
                       c.hidden, ACTIVATIONS.index(c.activation), c.context_width, c.first, c.omega0)
    return framed(header.kind, body + pack_records(header.synthesis + header.context), payload)


def header_size(config: LatentConfig) -> int:
    """Bytes of a file outside its payload."""
    n_synth = 2 * (config.hidden + 1)
    return FRAME_SIZE + _FIXED.size + (n_synth + 12) * RECORD_SIZE


# ---- the parts every version-3 file shares (the audio spectra's too: snfcodec.spectral.bitstream) ----------

PREFIX_SIZE = _PREFIX.size  # the header body starts here
FRAME_SIZE = _PREFIX.size + _CRC.size  # bytes of a file outside its header body and payload
RECORD_SIZE = _RECORD.size


def framed(kind: int, body: bytes, payload: bytes) -> bytes:
    """Prefix (version 3, ``kind``), header body, payload and the CRC-32 of all of them."""
    from ..container import MAGIC
    data = _PREFIX.pack(MAGIC, VERSION, kind, 0, len(body), len(payload)) + body + payload
    return data + _CRC.pack(zlib.crc32(data))


def lengths(data: bytes) -> tuple[int, int]:
    """(header length, payload length) of a file whose prefix :func:`snfcodec.container.read` has checked."""
    return _PREFIX.unpack_from(data, 0)[4:]


def pack_records(codes) -> bytes:
    return b"".join(_RECORD.pack(t.exponent, t.scale_index, t.lo, t.hi) for t in codes)


def read_records(data: bytes, pos: int, count: int, synthesis: int = 0) -> list[TensorCode]:
    """``count`` tensor records from byte ``pos``, the first ``synthesis`` of them synthesis tensors and the rest
    context weights, each checked against the format's bounds."""
    codes = []
    for i in range(count):
        q, s, lo, hi = _RECORD.unpack_from(data, pos)
        if not lo <= hi:
            fail(pos, f"tensor {i}: symbol range [{lo}, {hi}] is empty")
        if s >= tables.LATENT.num_scales:
            fail(pos, f"tensor {i}: scale index {s} outside 0..{tables.LATENT.num_scales - 1}")
        if i < synthesis and q > MAX_SYNTH_SHIFT:
            fail(pos, f"tensor {i}: step exponent {q} outside 0..{MAX_SYNTH_SHIFT}")
        if i >= synthesis and (q > FRAC + 7 or max(-lo, hi) << q > MAX_WEIGHT):
            fail(pos, f"tensor {i}: context weights [{lo}, {hi}] << {q} exceed {MAX_WEIGHT}")
        codes.append(TensorCode(q, s, lo, hi))
        pos += _RECORD.size
    return codes


def fail(offset: int, what: str):
    raise SnfFormatError(f"not a valid .snf file: {what} (at byte {offset})")


def read(data: bytes) -> tuple[LatentHeader, bytes]:
    """Parse a version-3 file whose prefix, length and CRC :func:`snfcodec.container.read` has already checked
    → (header, payload)."""
    from ..container import IMAGE_LAYOUTS, KIND_IMAGE
    _, version, kind, flags, hlen, plen = _PREFIX.unpack_from(data, 0)
    pos = _PREFIX.size
    end = pos + hlen
    if kind != KIND_IMAGE:
        fail(5, f"version {VERSION} holds images, not media kind {kind}")
    if hlen < _FIXED.size:
        fail(8, f"header length {hlen} is too short")
    H, W, C, layout, levels, width, hidden, act, cwidth, first, omega0 = _FIXED.unpack_from(data, pos)
    checks = [
        (1 <= H <= MAX_SIDE and 1 <= W <= MAX_SIDE and H * W <= MAX_PIXELS, f"image size {W}x{H} out of range"),
        (layout in IMAGE_LAYOUTS and layout == C, f"image layout {layout} with {C} channels"),
        (1 <= levels <= MAX_LEVELS, f"level count {levels} outside 1..{MAX_LEVELS}"),
        (1 <= width <= MAX_WIDTH, f"synthesis width {width} outside 1..{MAX_WIDTH}"),
        (0 <= hidden <= MAX_HIDDEN, f"synthesis hidden layers {hidden} outside 0..{MAX_HIDDEN}"),
        (act < len(ACTIVATIONS), f"unknown activation {act}"),
        (1 <= cwidth <= MAX_WIDTH, f"context width {cwidth} outside 1..{MAX_WIDTH}"),
        (first <= MAX_FIRST, f"finest level 1:2^{first} beyond 1:2^{MAX_FIRST}"),
        (math.isfinite(omega0) and 0 < omega0 <= 1e4, f"omega0 {omega0} is not a positive finite number"),
    ]
    for ok, what in checks:
        if not ok:
            fail(pos, what)
    pos += _FIXED.size
    config = LatentConfig(levels, width, hidden, ACTIVATIONS[act], float(omega0), cwidth, first)
    n_synth, n_ctx = 2 * (hidden + 1), 12
    if end - pos != (n_synth + n_ctx) * _RECORD.size:
        fail(pos, f"header length {hlen} does not match {n_synth} + {n_ctx} tensor records")
    codes = read_records(data, pos, n_synth + n_ctx, n_synth)
    header = LatentHeader(H, W, C, layout, config, tuple(codes[:n_synth]), tuple(codes[n_synth:]))
    return header, data[end:end + plen]


def dequantize_synthesis(symbols: np.ndarray, code: TensorCode) -> np.ndarray:
    return symbols.astype(np.float64) * 2.0 ** -code.exponent
