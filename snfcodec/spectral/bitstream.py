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
from dataclasses import asdict, dataclass

from ..latent.bitstream import (FRAME_SIZE, PREFIX_SIZE, RECORD_SIZE, fail, framed, lengths, pack_records,
                                read_records)
from ..latent.coding import TensorCode
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
_FIXED = struct.Struct("<IIBBBBBBf")  # sample rate, length, channels, log2 frame, log2 window, context width,
# transform, reserved, step; then 12 context records as the image field's


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
    return FRAME_SIZE + _FIXED.size + 12 * RECORD_SIZE


def write(header: SpectralHeader, payload: bytes) -> bytes:
    body = _FIXED.pack(header.sample_rate, header.length, header.channels, header.frame_log2,
                       header.window_log2, header.context_width, header.transform, 0, header.step)
    return framed(KIND, body + pack_records(header.context), payload)


def read(data: bytes) -> tuple[SpectralHeader, bytes]:
    """Parse a version-3 audio file whose prefix, length and CRC :func:`snfcodec.container.read` has already
    checked → (header, payload)."""
    hlen, plen = lengths(data)
    pos = PREFIX_SIZE
    end = pos + hlen
    if hlen != _FIXED.size + 12 * RECORD_SIZE:
        fail(8, f"header length {hlen} is not {_FIXED.size + 12 * RECORD_SIZE}")
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
            fail(pos, what)
    if C * min(1 << w, basis.frames(length, 1 << n)) * (1 << n) > MAX_WINDOW_COEFFICIENTS:
        fail(pos, f"windows of {C} x {1 << w} frames of {1 << n} exceed {MAX_WINDOW_COEFFICIENTS} coefficients")
    codes = read_records(data, pos + _FIXED.size, 12)
    header = SpectralHeader(rate, length, C, n, w, width, transform, step, tuple(codes))
    return header, data[end:end + plen]
