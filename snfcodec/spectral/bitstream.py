"""The ``.snf`` version-3 audio container: a spectral field. Normative text: ``formats/snf.md`` §9.

Same prefix and trailing CRC-32 as every ``.snf`` file (:mod:`snfcodec.container`), media kind 2, then a fixed
header (rate, length, channels, frame, step, channel transform), one record per context-network tensor, and one
range-coded payload: the context weights, then the coefficients component by component, pass by pass
(:mod:`snfcodec.spectral.coding`). Every count and size is checked against hard limits before anything is
allocated.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import asdict, dataclass

from ..errors import SnfFormatError
from ..latent import tables
from ..latent.coding import TensorCode
from ..latent.context import FRAC, MAX_WEIGHT
from . import basis, context

VERSION = 3
KIND = 2  # container.KIND_AUDIO
MAX_RATE = 10_000_000
MAX_CHANNELS = 8
FRAME_LOG2 = (4, 13)  # frames of 16 … 8192 samples
WINDOW_LOG2 = (1, 16)  # windows of 2 … 65536 frames
MAX_WINDOW_COEFFICIENTS = 1 << 24  # channels × window frames × frame length: what a decoder holds at a time
MAX_WIDTH = 64
TRANSFORMS = ("none", "mid/side")
_PREFIX = struct.Struct("<4sBBHII")  # as container: magic, version, kind, flags, header_length, payload_length
_FIXED = struct.Struct("<IIBBBBBBf")  # sample rate, length, channels, log2 frame, log2 window, context width,
# transform, reserved, step
_RECORD = struct.Struct("<BBhh")  # per context tensor: shift, scale index, lo, hi (as the image field's)
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class SpectralHeader:
    sample_rate: int
    length: int  # samples per channel
    channels: int
    frame_log2: int
    window_log2: int
    context_width: int
    transform: int  # index into TRANSFORMS
    step: float  # coefficient = integer × step (a float32 value)
    context: tuple[TensorCode, ...]

    version = VERSION
    kind = KIND

    @property
    def frame(self) -> int:
        return 1 << self.frame_log2

    @property
    def window(self) -> int:
        return 1 << self.window_log2

    @property
    def shape(self) -> tuple[int]:
        return (self.length,)

    @property
    def frames(self) -> int:
        return basis.frames(self.length, self.frame)

    def context_shapes(self) -> list[tuple[int, ...]]:
        return context.shapes(self.context_width)

    @property
    def parameters(self) -> int:
        return sum(math.prod(s) for s in self.context_shapes())

    def to_dict(self) -> dict:
        return {"version": VERSION, "kind": "audio", "channels": self.channels, "layout": "",
                "sample_rate": self.sample_rate,
                "shape": [self.length], "duration_seconds": self.length / self.sample_rate,
                "field": {"type": "spectral", "frame": self.frame, "frames": self.frames, "window": self.window,
                          "context_width": self.context_width, "transform": TRANSFORMS[self.transform],
                          "step": self.step},
                "latents": self.channels * self.frames * self.frame, "parameters": self.parameters,
                "tensors": [dict(asdict(t), shape=list(s), role="context")
                            for t, s in zip(self.context, self.context_shapes())],
                "prior": None}


def header_size() -> int:
    """Bytes of a file outside its payload."""
    return _PREFIX.size + _FIXED.size + 2 * 6 * _RECORD.size + _CRC.size


def write(header: SpectralHeader, payload: bytes) -> bytes:
    from ..container import MAGIC
    body = _FIXED.pack(header.sample_rate, header.length, header.channels, header.frame_log2,
                       header.window_log2, header.context_width, header.transform, 0, header.step)
    for t in header.context:
        body += _RECORD.pack(t.exponent, t.scale_index, t.lo, t.hi)
    data = _PREFIX.pack(MAGIC, VERSION, KIND, 0, len(body), len(payload)) + body + payload
    return data + _CRC.pack(zlib.crc32(data))


def _fail(offset: int, what: str):
    raise SnfFormatError(f"not a valid .snf file: {what} (at byte {offset})")


def read(data: bytes) -> tuple[SpectralHeader, bytes]:
    """Parse a version-3 audio file whose prefix, length and CRC :func:`snfcodec.container.read` has already
    checked → (header, payload)."""
    _, _, _, _, hlen, plen = _PREFIX.unpack_from(data, 0)
    pos = _PREFIX.size
    end = pos + hlen
    if hlen != _FIXED.size + 12 * _RECORD.size:
        _fail(8, f"header length {hlen} is not {_FIXED.size + 12 * _RECORD.size}")
    rate, length, C, n, w, width, transform, reserved, step = _FIXED.unpack_from(data, pos)
    checks = [
        (1 <= rate <= MAX_RATE, f"sample rate {rate} outside 1..{MAX_RATE}"),
        (length >= 1, "length is zero"),
        (1 <= C <= MAX_CHANNELS, f"channel count {C} outside 1..{MAX_CHANNELS}"),
        (FRAME_LOG2[0] <= n <= FRAME_LOG2[1], f"log2 frame {n} outside {FRAME_LOG2[0]}..{FRAME_LOG2[1]}"),
        (WINDOW_LOG2[0] <= w <= WINDOW_LOG2[1], f"log2 window {w} outside {WINDOW_LOG2[0]}..{WINDOW_LOG2[1]}"),
        (1 <= width <= MAX_WIDTH, f"context width {width} outside 1..{MAX_WIDTH}"),
        (transform < len(TRANSFORMS) and (transform == 0 or C == 2), f"channel transform {transform} with {C} "
                                                                     "channels"),
        (reserved == 0, "reserved field is not zero"),
        (math.isfinite(step) and step > 0, f"step {step} is not a positive finite number"),
    ]
    for ok, what in checks:
        if not ok:
            _fail(pos, what)
    if C * min(1 << w, basis.frames(length, 1 << n)) * (1 << n) > MAX_WINDOW_COEFFICIENTS:
        _fail(pos, f"windows of {C} x {1 << w} frames of {1 << n} exceed {MAX_WINDOW_COEFFICIENTS} coefficients")
    pos += _FIXED.size
    codes = []
    for i in range(12):
        q, s, lo, hi = _RECORD.unpack_from(data, pos)
        if not lo <= hi:
            _fail(pos, f"tensor {i}: symbol range [{lo}, {hi}] is empty")
        if s >= tables.LATENT.num_scales:
            _fail(pos, f"tensor {i}: scale index {s} outside 0..{tables.LATENT.num_scales - 1}")
        if q > FRAC + 7 or max(-lo, hi) << q > MAX_WEIGHT:
            _fail(pos, f"tensor {i}: context weights [{lo}, {hi}] << {q} exceed {MAX_WEIGHT}")
        codes.append(TensorCode(q, s, lo, hi))
        pos += _RECORD.size
    header = SpectralHeader(rate, length, C, n, w, width, transform, step, tuple(codes))
    return header, data[end:end + plen]
