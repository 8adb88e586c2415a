"""The ``.snf`` container (versions 1 and 2): header, entropy-coded payload, CRC-32. Normative text:
``formats/snf.md``. Version 2 is version 1 plus a reference to the learned prior the parameters are coded
against; a file without a prior is written as version 1, byte for byte what earlier writers produced.
Version 3 (a latent-grid image field) shares the prefix and the CRC; :func:`read` checks those and hands its
header to :mod:`snfcodec.latent.bitstream`.

The reader trusts nothing: every count and size is checked against hard limits and against the bytes that
are actually present before anything is allocated, and the CRC-32 over every preceding byte catches any single
changed bit and any truncation.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import asdict, dataclass

from .entropy import MAX_SCALE, MIN_SCALE, SymbolModel
from .errors import SnfFormatError
from .field import FieldConfig
from .grid import TileLayout

MAGIC = b"\x89SNF"
VERSION = 1  # a file without a prior
VERSION_PRIOR = 2  # a file whose parameters are coded as residuals from a learned prior
VERSION_LATENT = 3  # a latent-grid image field (snfcodec.latent)
KIND_IMAGE, KIND_AUDIO = 1, 2
KIND_NAMES = {KIND_IMAGE: "image", KIND_AUDIO: "audio"}
IMAGE_LAYOUTS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}

_PREFIX = struct.Struct("<4sBBHII")  # magic, version, kind, flags, header_length, payload_length
_FIXED = struct.Struct("<BBBBHHfffI")  # dims, channels, layout, sine_layers, width, reserved, ω₀, α₁, αₕ, rate
_TENSOR = struct.Struct("<ffhhh")  # step, scale, lo, hi, loc
_COUNT = struct.Struct("<HH")  # tensor count, reserved
_PRIOR = struct.Struct("<II")  # prior id, CRC-32 of the prior's parameters
_CRC = struct.Struct("<I")

# Hard limits a reader enforces before allocating anything.
MAX_DIMS = 3
MAX_CHANNELS = 16
MAX_WIDTH = 1024
MAX_SINE_LAYERS = 16
# Declarations a reader accepts (formats/snf.md): they bound what it allocates before the payload is decoded.
MAX_EXTENT = {KIND_IMAGE: 1 << 24, KIND_AUDIO: (1 << 32) - 1}  # samples along one dimension
MAX_TILES = 1 << 20
MAX_PARAMS = 1 << 26


@dataclass(frozen=True)
class TensorHeader:
    """Quantization step and entropy model of one parameter tensor."""

    step: float
    model: SymbolModel


@dataclass(frozen=True)
class PriorRef:
    """Which learned prior a version-2 file's parameters are residuals from: its registered number and the
    CRC-32 of its parameters (see :mod:`snfcodec.priors`), so that a decoder holding a different prior under
    the same number refuses instead of decoding garbage."""

    id: int
    checksum: int


@dataclass(frozen=True)
class Header:
    kind: int
    layout_code: int  # image: 1 L, 2 LA, 3 RGB, 4 RGBA; audio: 0
    sample_rate: int  # audio samples per second; 0 for images
    field: FieldConfig
    tiling: TileLayout
    tensors: tuple[TensorHeader, ...]
    prior: PriorRef | None = None

    @property
    def version(self) -> int:
        return VERSION if self.prior is None else VERSION_PRIOR

    @property
    def channels(self) -> int:
        return self.field.out_dim

    @property
    def shape(self) -> tuple[int, ...]:
        return self.tiling.shape

    @property
    def parameters(self) -> int:
        return self.tiling.num_tiles * self.field.params_per_field()

    def tensor_shapes(self) -> list[tuple[int, int, int]]:
        """Shape of each stored tensor, container order w0, b0, w1, b1, ...: (tiles, rows, cols)."""
        T = self.tiling.num_tiles
        shapes = []
        for fan_in, fan_out in self.field.layer_shapes():
            shapes += [(T, fan_in, fan_out), (T, 1, fan_out)]
        return shapes

    def to_dict(self) -> dict:
        """Everything in the header, JSON-ready (for ``snfcodec info``)."""
        return {
            "version": self.version,
            "kind": KIND_NAMES[self.kind],
            "shape": list(self.tiling.shape),
            "channels": self.channels,
            "layout": IMAGE_LAYOUTS.get(self.layout_code, "") if self.kind == KIND_IMAGE else "",
            "sample_rate": self.sample_rate,
            "field": asdict(self.field),
            "tiling": {"tile": list(self.tiling.tile), "margin": list(self.tiling.margin),
                       "tiles": self.tiling.num_tiles},
            "parameters": self.parameters,
            "tensors": [{"shape": list(s), "step": t.step, "lo": t.model.lo, "hi": t.model.hi,
                         "loc": t.model.loc, "scale": t.model.scale}
                        for s, t in zip(self.tensor_shapes(), self.tensors)],
            "prior": None if self.prior is None else {"id": self.prior.id, "checksum": f"{self.prior.checksum:08x}"},
        }


def header_size(dims: int, sine_layers: int, prior: bool = False) -> int:
    """Bytes of a file outside its payload (prefix, header, CRC) for a network of this shape."""
    return (_PREFIX.size + _FIXED.size + 12 * dims + _COUNT.size + 2 * (sine_layers + 1) * _TENSOR.size
            + (_PRIOR.size if prior else 0) + _CRC.size)


def write(header: Header, payload: bytes) -> bytes:
    """Serialise a header and its entropy-coded payload into a complete ``.snf`` byte string."""
    f, t = header.field, header.tiling
    D = len(t.shape)
    body = _FIXED.pack(D, f.out_dim, header.layout_code, f.sine_layers, f.width, 0, f.omega0, f.alpha_first,
                       f.alpha_hidden, header.sample_rate)
    body += struct.pack(f"<{3 * D}I", *t.shape, *t.tile, *t.margin)
    body += _COUNT.pack(len(header.tensors), 0)
    for th in header.tensors:
        m = th.model
        body += _TENSOR.pack(th.step, m.scale, m.lo, m.hi, m.loc)
    if header.prior is not None:
        body += _PRIOR.pack(header.prior.id, header.prior.checksum)
    data = _PREFIX.pack(MAGIC, header.version, header.kind, 0, len(body), len(payload)) + body + payload
    return data + _CRC.pack(zlib.crc32(data))


def size_problem(kind: int, field: FieldConfig, tiling: TileLayout) -> str | None:
    """What makes a network too large for the format's limits, or None: the encoder asks before fitting."""
    if max(tiling.shape) > MAX_EXTENT[kind]:
        return f"{max(tiling.shape)} samples along one dimension exceed the limit of {MAX_EXTENT[kind]}"
    if tiling.num_tiles > MAX_TILES:
        return f"{tiling.num_tiles} tiles exceed the limit of {MAX_TILES}"
    if tiling.num_tiles * field.params_per_field() > MAX_PARAMS:
        return f"network of {tiling.num_tiles * field.params_per_field()} parameters exceeds {MAX_PARAMS}"
    return None


def _fail(offset: int, what: str):
    raise SnfFormatError(f"not a valid .snf file: {what} (at byte {offset})")


def version_of(data: bytes) -> int | None:
    """The format version a byte string declares, or None if it is no ``.snf`` file (nothing else checked)."""
    return data[4] if len(data) > 4 and data[:4] == MAGIC else None


def read(data: bytes):
    """Parse and validate a ``.snf`` byte string → (header, payload): a :class:`Header` for versions 1 and 2,
    a :class:`snfcodec.latent.bitstream.LatentHeader` for version 3. Raises :class:`SnfFormatError`."""
    data = bytes(data)
    if len(data) < _PREFIX.size or data[:4] != MAGIC:
        _fail(0, "missing the .snf signature")
    _, version, kind, flags, hlen, plen = _PREFIX.unpack_from(data, 0)
    if version not in (VERSION, VERSION_PRIOR, VERSION_LATENT):
        _fail(4, f"format version {version} is not supported by this reader (it reads versions {VERSION} to "
                 f"{VERSION_LATENT}); upgrade snfcodec")
    if kind not in KIND_NAMES:
        _fail(5, f"unknown media kind {kind}")
    if flags != 0:
        _fail(6, f"unknown flags 0x{flags:04x}")
    expected = _PREFIX.size + hlen + plen + _CRC.size
    if len(data) != expected:
        _fail(len(data), f"file is {len(data)} bytes but its header declares {expected} (truncated or padded)")
    crc_at = expected - _CRC.size
    if zlib.crc32(data[:crc_at]) != _CRC.unpack_from(data, crc_at)[0]:
        _fail(crc_at, "checksum mismatch: the file is damaged")
    if version == VERSION_LATENT and kind == KIND_IMAGE:
        from .latent import bitstream
        return bitstream.read(data)
    if version == VERSION_LATENT:
        from .spectral import bitstream as spectral_bitstream
        return spectral_bitstream.read(data)

    pos = _PREFIX.size
    end = pos + hlen
    if hlen < _FIXED.size:
        _fail(8, f"header length {hlen} is too short")
    D, C, layout, L, width, reserved, omega0, a1, ah, rate = _FIXED.unpack_from(data, pos)
    checks = [
        (1 <= D <= MAX_DIMS, f"dimension count {D} outside 1..{MAX_DIMS}"),
        (1 <= C <= MAX_CHANNELS, f"channel count {C} outside 1..{MAX_CHANNELS}"),
        (1 <= L <= MAX_SINE_LAYERS, f"sine layer count {L} outside 1..{MAX_SINE_LAYERS}"),
        (1 <= width <= MAX_WIDTH, f"width {width} outside 1..{MAX_WIDTH}"),
        (reserved == 0, "reserved field is not zero"),
        (math.isfinite(omega0) and 0 < omega0 <= 1e4, f"omega0 {omega0} is not a positive finite number"),
        (math.isfinite(a1) and math.isfinite(ah), "alpha is not finite"),
    ]
    if kind == KIND_IMAGE:
        checks += [(D == 2, f"an image needs 2 dimensions, not {D}"),
                   (layout in IMAGE_LAYOUTS and layout == C, f"image layout {layout} with {C} channels"),
                   (rate == 0, "an image has no sample rate")]
    else:
        checks += [(D == 1, f"audio needs 1 dimension, not {D}"), (layout == 0, f"audio layout {layout}"),
                   (1 <= rate <= 10_000_000, f"sample rate {rate} outside 1..10000000")]
    for ok, what in checks:
        if not ok:
            _fail(pos, what)
    pos += _FIXED.size
    need = 12 * D + _COUNT.size
    if end - pos < need:
        _fail(pos, "header too short for its shape and tiling")
    dims = struct.unpack_from(f"<{3 * D}I", data, pos)
    shape, tile, margin = dims[:D], dims[D:2 * D], dims[2 * D:]
    extent = MAX_EXTENT[kind]
    for d in range(D):
        if not (1 <= shape[d] <= extent and 1 <= tile[d] <= extent and 2 * margin[d] <= tile[d]):
            _fail(pos, f"invalid shape/tiling {shape}/{tile}/{margin}")
    tiling = TileLayout(tuple(shape), tuple(tile), tuple(margin))
    field = FieldConfig(D, C, width, L, float(omega0), float(a1), float(ah))
    problem = size_problem(kind, field, tiling)
    if problem:
        _fail(pos, problem)
    pos += 12 * D
    count, reserved = _COUNT.unpack_from(data, pos)
    pos += _COUNT.size
    if count != 2 * (L + 1):
        _fail(pos - _COUNT.size, f"{count} tensors declared, the network has {2 * (L + 1)}")
    if reserved != 0:
        _fail(pos - 2, "reserved field is not zero")
    extra = _PRIOR.size if version == VERSION_PRIOR else 0
    if end - pos != count * _TENSOR.size + extra:
        _fail(pos, f"header length {hlen} does not match {count} tensor records"
                   + (" and a prior reference" if extra else ""))
    tensors = []
    for i in range(count):
        step, scale, lo, hi, loc = _TENSOR.unpack_from(data, pos)
        if not (math.isfinite(step) and step > 0):
            _fail(pos, f"tensor {i}: quantization step {step} is not positive and finite")
        if not (MIN_SCALE <= scale <= MAX_SCALE):
            _fail(pos, f"tensor {i}: entropy scale {scale} outside {MIN_SCALE}..{MAX_SCALE}")
        if not lo <= loc <= hi:
            _fail(pos, f"tensor {i}: symbol range [{lo}, {hi}] does not contain its location {loc}")
        tensors.append(TensorHeader(float(step), SymbolModel(lo, hi, loc, float(scale))))
        pos += _TENSOR.size
    prior = PriorRef(*_PRIOR.unpack_from(data, pos)) if extra else None
    header = Header(kind, layout, rate, field, tiling, tuple(tensors), prior)
    return header, data[end:crc_at]
